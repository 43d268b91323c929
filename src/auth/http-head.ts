/**
 * Reading one request head for the auth_http reader (./http.ts): the request line and the header
 * lines, strictly where it matters (see http.ts for what is accepted and refused). Pure: no I/O.
 */

/** Why a request could not be read (logged as `code`). */
export type HttpProblem = 'header-too-large' | 'bad-byte' | 'bad-request-line' | 'bad-header' | 'body-not-expected';

const REQUEST_LINE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) ([\x21-\x7e]+) HTTP\/1\.([01])$/;
/** tchar (RFC 9110 5.6.2) by char code: 1 for a token character. */
const TCHAR = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") TCHAR[c.charCodeAt(0)] = 1;
/**
 * Header name as sent → lower-case name. nginx sends the same dozen names on every request, so
 * this saves a toLowerCase and the re-hashing of a fresh key string per header; bounded, so
 * made-up names from elsewhere only miss.
 */
const LOWER_NAMES = new Map<string, string>();
function lowerName(name: string): string {
  const known = LOWER_NAMES.get(name);
  if (known !== undefined) return known;
  const lower = name.toLowerCase();
  if (LOWER_NAMES.size < 256) LOWER_NAMES.set(name, lower);
  return lower;
}

/**
 * The headers object: no Object.prototype behind it (a header named `__proto__` or `constructor`
 * is just a header, an absent one reads undefined), like Object.create(null), but built by a
 * constructor so V8 keeps it in fast mode: nginx sends the same names in the same order, so
 * every request's object shares one hidden class and reads of it are inline loads, where an
 * Object.create(null) object is a hash table behind a generic IC call per read (perf showed
 * those IC calls as ~4% of the server's samples).
 */
const HeaderBag = function HeaderBag() { /* fields are added by parseHead */ } as unknown as new () => Record<string, string | undefined>;
HeaderBag.prototype = Object.create(null) as object;

/** No control characters other than HTAB and CRLF/LF line ends (NUL, a bare CR …). */
function hasBadByte(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 32 || c === 9 || c === 10) continue;
    if (c === 13 && s.charCodeAt(i + 1) === 10) continue;
    return true;
  }
  return false;
}

/** Index just past the first empty line (CRLF or bare LF), or -1. */
export function headEnd(s: string): number {
  const crlf = s.indexOf('\n\r\n');
  const lf = s.indexOf('\n\n');
  if (crlf === -1) return lf === -1 ? -1 : lf + 2;
  return lf !== -1 && lf < crlf ? lf + 2 : crlf + 3;
}

/** SP/HTAB only: String.prototype.trim would also eat 0xA0, a byte of many UTF-8 characters. */
function trimOws(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && (s.charCodeAt(a) === 32 || s.charCodeAt(a) === 9)) a++;
  while (b > a && (s.charCodeAt(b - 1) === 32 || s.charCodeAt(b - 1) === 9)) b--;
  return a === 0 && b === s.length ? s : s.slice(a, b);
}

function hasToken(list: string, token: string): boolean {
  for (const t of list.split(',')) if (trimOws(t).toLowerCase() === token) return true;
  return false;
}

export interface ParsedHead { method: string; target: string; headers: Record<string, string | undefined>; keepAlive: boolean }

/**
 * Reads one complete head (request line, header lines, empty line). One pass over the string by
 * index (no split, no per-line strings, no regex per header): it runs once per login.
 */
export function parseHead(head: string): ParsedHead | HttpProblem {
  if (hasBadByte(head)) return 'bad-byte';
  // Every CR is followed by LF here (hasBadByte), so a line ends at LF, minus a CR before it.
  let nl = head.indexOf('\n');
  if (nl === -1) nl = head.length;
  const m = REQUEST_LINE.exec(head.slice(0, nl > 0 && head.charCodeAt(nl - 1) === 13 ? nl - 1 : nl));
  if (!m) return 'bad-request-line';
  const headers = new HeaderBag();
  let pos = nl + 1;
  while (pos < head.length) {
    nl = head.indexOf('\n', pos);
    if (nl === -1) nl = head.length;
    const end = nl > pos && head.charCodeAt(nl - 1) === 13 ? nl - 1 : nl;
    if (end === pos) break; // the empty line
    // The name: tchar up to the colon; anything else (obs-fold, a space before the colon) → 400.
    let colon = pos;
    for (; colon < end; colon++) {
      const c = head.charCodeAt(colon);
      if (c === 58) break;
      if (c >= 128 || TCHAR[c] === 0) return 'bad-header';
    }
    if (colon === pos || colon === end) return 'bad-header';
    const key = lowerName(head.slice(pos, colon));
    // The value, trimmed of SP/HTAB only (String.prototype.trim would also eat 0xA0, a byte of
    // many UTF-8 characters).
    let a = colon + 1;
    let b = end;
    while (a < b && (head.charCodeAt(a) === 32 || head.charCodeAt(a) === 9)) a++;
    while (b > a && (head.charCodeAt(b - 1) === 32 || head.charCodeAt(b - 1) === 9)) b--;
    const value = head.slice(a, b);
    const prev = headers[key];
    headers[key] = prev === undefined ? value : `${prev}, ${value}`;
    pos = nl + 1;
  }
  const length = headers['content-length'];
  if (headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0')) return 'body-not-expected';
  const connection = headers.connection;
  const keepAlive = m[3] === '1'
    ? connection === undefined || !hasToken(connection, 'close')
    : connection !== undefined && hasToken(connection, 'keep-alive');
  return { method: m[1]!, target: m[2]!, headers, keepAlive };
}
