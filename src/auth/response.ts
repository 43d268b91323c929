/**
 * The answers nginx understands, built in one place. nginx ignores the HTTP status line and reads
 * only the Auth-* headers (ngx_mail_auth_http_process_headers):
 * - `Auth-Status: OK` + Auth-Server (must parse as an IP literal) + Auth-Port [+ Auth-User];
 * - `Auth-Status: WAIT` + Auth-Wait: re-ask after that many seconds, attempt not counted;
 * - any other Auth-Status is an error text shown to the client; with Auth-Wait nginx lets the
 *   client try again after the wait, without it nginx closes the connection.
 * nginx reads the answer into one 1024-byte buffer: every answer here stays well below that.
 */
export const STATUS_INVALID = 'Invalid login or password';
export const STATUS_TEMPORARY = 'Temporary server problem, try again later';
export const STATUS_METHOD = 'Authentication method not supported';
export const STATUS_SMTP_REFUSED = 'SMTP is not served here';
export const MAX_RESPONSE_BYTES = 1024;

export type AuthResult =
  | 'ok' | 'invalid' | 'throttled' | 'wait' | 'temporary' | 'unsupported' | 'refused' | 'bad_request' | 'forbidden';

export interface AuthAnswer {
  result: AuthResult;
  httpStatus: number;
  /** Header name → value, in wire order. Values are latin1 strings (one char per byte). */
  headers: Record<string, string>;
}

/** Header values go out as bytes: a UTF-8 name becomes its bytes, one latin1 char each. */
function bytes(value: string): string {
  return Buffer.from(value, 'utf8').toString('latin1');
}

export const answers = {
  ok(server: string, port: number, backendUser?: string): AuthAnswer {
    const headers: Record<string, string> = { 'Auth-Status': 'OK', 'Auth-Server': server, 'Auth-Port': String(port) };
    if (backendUser !== undefined) headers['Auth-User'] = bytes(backendUser);
    return { result: 'ok', httpStatus: 200, headers };
  },
  invalid(waitSeconds: number | null, result: 'invalid' | 'throttled' | 'bad_request' = 'invalid'): AuthAnswer {
    const headers: Record<string, string> = { 'Auth-Status': STATUS_INVALID };
    if (waitSeconds !== null) headers['Auth-Wait'] = String(waitSeconds);
    return { result, httpStatus: 200, headers };
  },
  wait(seconds: number): AuthAnswer {
    return { result: 'wait', httpStatus: 200, headers: { 'Auth-Status': 'WAIT', 'Auth-Wait': String(seconds) } };
  },
  temporary(waitSeconds: number | null): AuthAnswer {
    const headers: Record<string, string> = { 'Auth-Status': STATUS_TEMPORARY };
    if (waitSeconds !== null) headers['Auth-Wait'] = String(waitSeconds);
    // For SMTP sessions nginx prefixes the text with Auth-Error-Code (default 535 5.7.0, permanent).
    headers['Auth-Error-Code'] = '451 4.3.0';
    return { result: 'temporary', httpStatus: 200, headers };
  },
  unsupportedMethod(): AuthAnswer {
    return { result: 'unsupported', httpStatus: 200, headers: { 'Auth-Status': STATUS_METHOD, 'Auth-Error-Code': '504 5.5.4' } };
  },
  smtpRefused(): AuthAnswer {
    return { result: 'refused', httpStatus: 200, headers: { 'Auth-Status': STATUS_SMTP_REFUSED, 'Auth-Error-Code': '550 5.7.1' } };
  },
  forbidden(): AuthAnswer {
    // No Auth-Status: nginx logs "did not send server or port" loudly, which is what a
    // misconfigured secret or address deserves.
    return { result: 'forbidden', httpStatus: 403, headers: {} };
  },
} as const;

/** The whole raw response for clientError paths where no ServerResponse exists. */
export function rawResponse(status: number, reason: string, headers: Record<string, string>): string {
  let out = `HTTP/1.1 ${status} ${reason}\r\n`;
  for (const [k, v] of Object.entries(headers)) out += `${k}: ${v}\r\n`;
  return out + 'Content-Length: 0\r\nConnection: close\r\n\r\n';
}
