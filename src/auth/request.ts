/**
 * Reading one nginx auth_http request. nginx (ngx_mail_auth_http_module) sends, in this order:
 * Host, Auth-Method, Auth-User, Auth-Pass, [Auth-Salt], Auth-Protocol, Auth-Login-Attempt,
 * Client-IP, [Client-Host], [Auth-SMTP-*], [Auth-SSL*], then every `auth_http_header`.
 *
 * Auth-User and Auth-Pass are the client's bytes with only space, `%` and control characters
 * (0x00–0x1f) %-escaped; UTF-8 and DEL come raw. http.ts hands header values over as latin1 strings,
 * i.e. one char per byte, so we go back to bytes, undo the escapes, then decode UTF-8 strictly.
 */
/** Lower-case header names → latin1 values, as src/auth/http.ts (and node:http) produce them. */
export type RequestHeaders = Readonly<Record<string, string | string[] | undefined>>;

export type AuthProtocol = 'imap' | 'pop3' | 'smtp';

export interface AuthRequest {
  method: string;
  /** Decoded login name exactly as the client typed it (UTF-8). */
  user: string;
  /** Auth-Pass as received (still %-escaped, one char per byte): see passwordBytes(). Never logged. */
  passText: string;
  protocol: AuthProtocol;
  /** nginx counts from 1; WAIT re-asks keep the same number. */
  attempt: number;
  clientIp: string;
  clientHost: string | undefined;
}

/** Why a request could not be read; `user` is filled when the name itself was readable. */
export interface BadAuthRequest {
  problem: 'missing-user' | 'bad-user' | 'bad-pass' | 'bad-protocol' | 'missing-client-ip' | 'bad-attempt';
  protocol: AuthProtocol | undefined;
  clientIp: string | undefined;
  attempt: number;
}

export const MAX_NAME_BYTES = 256;
export const MAX_PASS_BYTES = 1024;

const HEX = /^[0-9A-Fa-f]{2}$/;
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Undoes nginx's %-escaping of a latin1 header value; null on a malformed escape. */
export function unescapeNginx(value: string): Buffer | null {
  const raw = Buffer.from(value, 'latin1');
  if (!raw.includes(0x25)) return raw;
  const out = Buffer.allocUnsafe(raw.length);
  let o = 0;
  for (let i = 0; i < raw.length; i++) {
    const b = raw[i]!;
    if (b !== 0x25) { out[o++] = b; continue; }
    const hex = raw.toString('latin1', i + 1, i + 3);
    if (!HEX.test(hex)) return null;
    out[o++] = parseInt(hex, 16);
    i += 2;
  }
  return out.subarray(0, o);
}

/**
 * A login name we are willing to look up and to echo back in Auth-User: valid UTF-8, no control
 * characters (CR, LF, NUL …, DEL), no spaces, not empty, bounded. A CRLF in a name is an attempt
 * at header injection, never a real user.
 */
export function decodeLoginName(value: string): string | null {
  // Fast path, nearly every login: printable ASCII without `%` needs no decoding at all.
  if (value.length <= MAX_NAME_BYTES && PLAIN_ASCII.test(value)) return value;
  const bytes = unescapeNginx(value);
  if (!bytes || bytes.length === 0 || bytes.length > MAX_NAME_BYTES) return null;
  for (const b of bytes) if (b <= 0x20 || b === 0x7f) return null;
  let name: string;
  try {
    name = utf8.decode(bytes);
  } catch {
    return null; // not UTF-8: no user can have this name
  }
  // C1 controls and line/paragraph separators are control characters too once decoded.
  if (/[\u0080-\u009f\u2028\u2029]/.test(name)) return null;
  return name;
}

const PLAIN_ASCII = /^[\x21-\x24\x26-\x7e]+$/;

/** The password bytes nginx sent (decoded only when a mode needs them); null when malformed or too long. */
export function passwordBytes(req: AuthRequest): Buffer | null {
  const pass = unescapeNginx(req.passText);
  return pass && pass.length <= MAX_PASS_BYTES ? pass : null;
}

function one(headers: RequestHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

export function parseProtocol(v: string | undefined): AuthProtocol | undefined {
  return v === 'imap' || v === 'pop3' || v === 'smtp' ? v : undefined;
}

function badRequest(problem: BadAuthRequest['problem'], protocol: AuthProtocol | undefined, clientIp: string | undefined,
  attempt: number): BadAuthRequest {
  return { problem, protocol, clientIp, attempt };
}

export function parseAuthRequest(headers: RequestHeaders): AuthRequest | BadAuthRequest {
  const protocol = parseProtocol(one(headers, 'auth-protocol'));
  const clientIp = one(headers, 'client-ip');
  const attemptText = one(headers, 'auth-login-attempt');
  let attempt = 1;
  if (attemptText !== undefined) {
    if (!/^[0-9]{1,9}$/.test(attemptText)) return badRequest('bad-attempt', protocol, clientIp, attempt);
    attempt = Math.max(1, Number(attemptText));
  }
  if (!protocol) return badRequest('bad-protocol', protocol, clientIp, attempt);
  if (!clientIp) return badRequest('missing-client-ip', protocol, clientIp, attempt);
  const method = one(headers, 'auth-method') ?? 'plain';
  const userText = one(headers, 'auth-user');
  let user = '';
  // SMTP without authentication (`smtp_auth none`, Auth-Method none) legitimately has no user.
  if (!(protocol === 'smtp' && method === 'none')) {
    if (userText === undefined || userText === '') return badRequest('missing-user', protocol, clientIp, attempt);
    const decoded = decodeLoginName(userText);
    if (decoded === null) return badRequest('bad-user', protocol, clientIp, attempt);
    user = decoded;
  }
  const passText = one(headers, 'auth-pass') ?? '';
  // Bounded before anything decodes it: at most 3 escaped chars per byte.
  if (passText.length > MAX_PASS_BYTES * 3) return badRequest('bad-pass', protocol, clientIp, attempt);
  return { method, user, passText, protocol, attempt, clientIp, clientHost: one(headers, 'client-host') };
}

export function isBadRequest(r: AuthRequest | BadAuthRequest): r is BadAuthRequest {
  return 'problem' in r;
}
