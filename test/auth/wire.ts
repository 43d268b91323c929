/**
 * Requests shaped exactly as nginx's ngx_mail_auth_http_module writes them (HTTP/1.0, one
 * connection per request, this header order, its %-escaping), and a raw reader of the answer.
 */
import { connect } from 'node:net';

/** nginx's NGX_ESCAPE_MAIL_AUTH: 0x00–0x1f, space and `%` become %XX (upper-case hex); the rest raw. */
export function nginxEscape(value: string | Buffer): Buffer {
  const raw = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
  const parts: number[] = [];
  for (const b of raw) {
    if (b <= 0x20 || b === 0x25) parts.push(0x25, ...Buffer.from(b.toString(16).toUpperCase().padStart(2, '0'), 'latin1'));
    else parts.push(b);
  }
  return Buffer.from(parts);
}

export interface NginxRequest {
  user?: string | Buffer | null;
  pass?: string | Buffer | null;
  protocol?: string | null;
  method?: string;
  attempt?: number | null;
  clientIp?: string | null;
  clientHost?: string;
  path?: string;
  host?: string;
  /** auth_http_header lines, appended last as nginx does. */
  extra?: Record<string, string>;
}

export function nginxRequestBytes(r: NginxRequest): Buffer {
  const chunks: Buffer[] = [];
  const line = (s: string | Buffer) => chunks.push(typeof s === 'string' ? Buffer.from(s, 'latin1') : s, Buffer.from('\r\n'));
  line(`GET ${r.path ?? '/auth'} HTTP/1.0`);
  line(`Host: ${r.host ?? '127.0.0.1'}`);
  line(`Auth-Method: ${r.method ?? 'plain'}`);
  if (r.user !== null) line(Buffer.concat([Buffer.from('Auth-User: '), nginxEscape(r.user ?? 'alice')]));
  if (r.pass !== null) line(Buffer.concat([Buffer.from('Auth-Pass: '), nginxEscape(r.pass ?? 'secret')]));
  if (r.protocol !== null) line(`Auth-Protocol: ${r.protocol ?? 'imap'}`);
  if (r.attempt !== null) line(`Auth-Login-Attempt: ${r.attempt ?? 1}`);
  if (r.clientIp !== null) line(`Client-IP: ${r.clientIp ?? '192.0.2.10'}`);
  if (r.clientHost) line(`Client-Host: ${r.clientHost}`);
  for (const [k, v] of Object.entries(r.extra ?? {})) line(`${k}: ${v}`);
  line('');
  return Buffer.concat(chunks);
}

export interface RawAnswer {
  status: number;
  /** Headers in wire order, values as latin1 (bytes). */
  headers: [string, string][];
  /** Only the Auth-* headers, in order, as "Name: value" lines. */
  auth: string[];
  bytes: number;
  raw: string;
}

export function parseAnswer(raw: Buffer): RawAnswer {
  const text = raw.toString('latin1');
  const end = text.indexOf('\r\n\r\n');
  const head = (end === -1 ? text : text.slice(0, end)).split('\r\n');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head[0] ?? '')?.[1] ?? 0);
  const headers = head.slice(1).filter(Boolean).map((l) => {
    const i = l.indexOf(':');
    return [l.slice(0, i), l.slice(i + 1).trim()] as [string, string];
  });
  return { status, headers, auth: headers.filter(([k]) => k.startsWith('Auth-')).map(([k, v]) => `${k}: ${v}`), bytes: raw.length, raw: text };
}

/** One request on its own connection; resolves with the answer once the server closes. */
export function exchange(port: number, request: NginxRequest | Buffer, host = '127.0.0.1'): Promise<RawAnswer> {
  const bytes = Buffer.isBuffer(request) ? request : nginxRequestBytes(request);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const sock = connect(port, host, () => sock.write(bytes)); // nginx does not half-close
    sock.setTimeout(5_000, () => sock.destroy(new Error('no answer within 5 s')));
    sock.on('data', (c) => chunks.push(c));
    sock.on('error', reject);
    sock.on('close', () => resolve(parseAnswer(Buffer.concat(chunks))));
  });
}
