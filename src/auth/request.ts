/**
 * Reading one nginx auth_http request. nginx (ngx_mail_auth_http_module) sends, in this order:
 * Host, Auth-Method, Auth-User, Auth-Pass, [Auth-Salt], Auth-Protocol, Auth-Login-Attempt,
 * Client-IP, [Client-Host], [Auth-SMTP-*], [Auth-SSL*], then every `auth_http_header`.
 *
 * Auth-User and Auth-Pass are the client's bytes with only space, `%` and control characters
 * (0x00–0x1f) %-escaped; UTF-8 comes raw. Node hands header values over as latin1 strings, i.e.
 * one char per byte, so we go back to bytes, undo the escapes, then decode UTF-8 strictly.
 */
import type { IncomingHttpHeaders } from 'node:http';

export type AuthProtocol = 'imap' | 'pop3' | 'smtp';

export interface AuthRequest {
  method: string;
  /** Decoded login name exactly as the client typed it (UTF-8). */
  user: string;
  /** Decoded password bytes. Never logged. */
  pass: Buffer;
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

function one(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

export function parseProtocol(v: string | undefined): AuthProtocol | undefined {
  return v === 'imap' || v === 'pop3' || v === 'smtp' ? v : undefined;
}

export function parseAuthRequest(headers: IncomingHttpHeaders): AuthRequest | BadAuthRequest {
  const protocol = parseProtocol(one(headers, 'auth-protocol'));
  const clientIp = one(headers, 'client-ip');
  const attemptText = one(headers, 'auth-login-attempt');
  let attempt = 1;
  if (attemptText !== undefined) {
    if (!/^[0-9]{1,9}$/.test(attemptText)) return { problem: 'bad-attempt', protocol, clientIp, attempt };
    attempt = Math.max(1, Number(attemptText));
  }
  const bad = (problem: BadAuthRequest['problem']): BadAuthRequest => ({ problem, protocol, clientIp, attempt });
  if (!protocol) return bad('bad-protocol');
  if (!clientIp) return bad('missing-client-ip');
  const method = one(headers, 'auth-method') ?? 'plain';
  const userText = one(headers, 'auth-user');
  let user = '';
  // SMTP without authentication (`smtp_auth none`, Auth-Method none) legitimately has no user.
  if (!(protocol === 'smtp' && method === 'none')) {
    if (userText === undefined || userText === '') return bad('missing-user');
    const decoded = decodeLoginName(userText);
    if (decoded === null) return bad('bad-user');
    user = decoded;
  }
  const pass = unescapeNginx(one(headers, 'auth-pass') ?? '');
  if (!pass || pass.length > MAX_PASS_BYTES) return bad('bad-pass');
  return {
    method,
    user,
    pass,
    protocol,
    attempt,
    clientIp,
    clientHost: one(headers, 'client-host'),
  };
}

export function isBadRequest(r: AuthRequest | BadAuthRequest): r is BadAuthRequest {
  return 'problem' in r;
}
