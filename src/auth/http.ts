/**
 * The HTTP side of auth_http: a small request reader over node:net instead of node:http.
 *
 * Why not node:http: nginx's auth_http request is a fixed, tiny subset of HTTP (a GET with a few
 * headers, no body, one request per connection unless keep-alive is configured), and nginx opens
 * a new connection for every login, so per-connection cost is what limits us. Profiles of the
 * node:http version were dominated by node:http's connection handling (IncomingMessage and
 * ServerResponse per request, parser set-up, header objects, timers per connection) and socket
 * writes; with this reader storeroute, doing its whole lookup, costs about what a minimal
 * node:http server answering a constant costs (bench/auth.ts). What remains is net.Socket itself
 * and the kernel (accept, getpeername, write, close): a bare node:net server that answers a
 * constant measured ~55-80 us per connection here against nginx's ~25-30 us.
 * No package fits: the alternatives are full HTTP servers with the same per-connection costs
 * (undici has no server), native add-ons, or unmaintained parsers. What we need is small: read up
 * to an empty line, check the bytes, split "Name: value" lines, answer with one write.
 *
 * What is accepted (strict where it matters, robust where nginx cannot be wrong):
 * - request line `METHOD SP target SP HTTP/1.0|1.1`; leading empty lines skipped (RFC 9112 2.2);
 * - lines end in CRLF; a bare LF is tolerated too (nginx never sends one);
 * - NUL, a bare CR and other control characters (except HTAB) anywhere in the head → 400, like
 *   node:http. DEL (0x7f) and bytes ≥ 0x80 are accepted in values: nginx does not escape DEL in
 *   Auth-Pass (nor UTF-8), so refusing them refused real passwords;
 * - header names are tokens; no obs-fold, no space before the colon (→ 400); values are trimmed
 *   of SP/HTAB only and kept as latin1 (one char per byte, as node:http hands them over);
 *   a repeated header is joined with ", " (as node:http does for these headers);
 * - no body: a Content-Length other than 0 or any Transfer-Encoding → 400 (nginx sends none;
 *   refusing them means no request smuggling on a kept-alive connection);
 * - head larger than maxHeaderBytes → 431; a head not complete within requestTimeoutMs of the
 *   connection (or, kept alive, of the request's first byte) → connection dropped;
 * - keep-alive: HTTP/1.1 unless `Connection: close`, HTTP/1.0 with `Connection: keep-alive`;
 *   idle kept-alive connections close after keepAliveTimeoutMs; requests on one connection are
 *   answered in order (pipelining is safe: the next head is read after the answer is written).
 * Answers carry no Date header (nginx reads only Auth-*; equal answers are equal bytes).
 */
import { createServer, type Server, type Socket } from 'node:net';

export interface HttpRequest {
  method: string;
  /** Request target as sent (path and query). */
  target: string;
  /** Lower-case names → latin1 values (one char per byte); repeated headers joined with ", ". */
  headers: Record<string, string | undefined>;
  remoteAddress: string | undefined;
}

export interface HttpLimits {
  maxHeaderBytes: number;
  requestTimeoutMs: number;
  keepAliveTimeoutMs: number;
}

/** Why a request could not be read (logged as `code`). */
export type HttpProblem = 'header-too-large' | 'bad-byte' | 'bad-request-line' | 'bad-header' | 'body-not-expected';

export interface Exchange {
  /** Writes the answer (status, headers in order, Content-Length 0) and continues or closes. */
  respond(status: number, headers: Readonly<Record<string, string>>): void;
}

export interface HttpHandlers {
  request(req: HttpRequest, exchange: Exchange): void;
  /** A request that could not be read; the answer (400/431) is written by the reader. */
  badRequest(problem: HttpProblem, remoteAddress: string | undefined): { headers: Record<string, string> };
  /** A partial request that did not complete in time (connection dropped). */
  timeout(remoteAddress: string | undefined): void;
}

export interface HttpServer {
  listen(port: number, host: string): Promise<{ port: number }>;
  close(): Promise<void>;
}

const REASONS: Record<number, string> = {
  200: 'OK', 204: 'No Content', 400: 'Bad Request', 403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed',
  431: 'Request Header Fields Too Large',
};
const STATUS_LINES = new Map(Object.entries(REASONS).map(([code, reason]) => [Number(code), `HTTP/1.1 ${code} ${reason}\r\n`]));

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
function headEnd(s: string): number {
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

interface ParsedHead { method: string; target: string; headers: Record<string, string | undefined>; keepAlive: boolean }

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

/** One client connection: reads heads, hands requests over one at a time, writes answers. */
class Connection implements Exchange {
  #pending = '';
  #busy = false;
  #keepAlive = false;
  #done = false;
  #peerEnded = false;
  #noDelay = false;
  /** performance.now() past which the sweep drops the connection; 0 while we are the slow side. */
  deadline: number;

  constructor(readonly engine: Engine, readonly socket: Socket, readonly remoteAddress: string | undefined) {
    this.deadline = performance.now() + engine.limits.requestTimeoutMs;
  }

  get busy(): boolean { return this.#busy; }
  get partial(): boolean { return this.#pending.length > 0; }

  onData(chunk: Buffer): void {
    if (this.#done) return;
    if (this.#pending.length === 0 && !this.#busy) this.deadline = performance.now() + this.engine.limits.requestTimeoutMs;
    this.#pending = this.#pending.length === 0 ? chunk.toString('latin1') : this.#pending + chunk.toString('latin1');
    if (this.#busy) {
      // Pipelined bytes wait for the current answer; stop reading if they pile up.
      if (this.#pending.length > this.engine.limits.maxHeaderBytes) this.socket.pause();
      return;
    }
    this.#next();
  }

  onEnd(): void {
    // Already answered and ended: the socket closes by itself (a second end() would only build an error).
    if (this.#done) return;
    this.#peerEnded = true;
    // Answer a request in progress first (respond closes); otherwise nothing more can come.
    if (!this.#busy) this.#finish();
  }

  #next(): void {
    let s = this.#pending;
    let start = 0;
    for (;;) {
      const c = s.charCodeAt(start);
      if (c === 10) start += 1;
      else if (c === 13 && s.charCodeAt(start + 1) === 10) start += 2;
      else break;
    }
    if (start > 0) s = s.slice(start);
    const end = headEnd(s);
    const max = this.engine.limits.maxHeaderBytes;
    if (end === -1 || end > max) {
      this.#pending = s;
      if (end > max || s.length > max) this.#fail('header-too-large');
      else if (this.#peerEnded) this.#finish();
      return;
    }
    this.#pending = s.length === end ? '' : s.slice(end);
    const head = parseHead(end === s.length ? s : s.slice(0, end));
    if (typeof head === 'string') {
      this.#fail(head);
      return;
    }
    this.#busy = true;
    this.#keepAlive = head.keepAlive;
    this.deadline = 0;
    this.engine.handlers.request({ method: head.method, target: head.target, headers: head.headers, remoteAddress: this.remoteAddress }, this);
  }

  respond(status: number, headers: Readonly<Record<string, string>>): void {
    if (!this.#busy) throw new Error('respond() without a request in progress');
    this.#busy = false;
    if (this.socket.destroyed) return;
    const keepAlive = this.#keepAlive && !this.#peerEnded && !this.engine.closing;
    let out = STATUS_LINES.get(status) ?? `HTTP/1.1 ${status} Unknown\r\n`;
    for (const name in headers) out += `${name}: ${headers[name]}\r\n`;
    out += keepAlive ? this.engine.keepAliveTail : CLOSE_TAIL;
    if (!keepAlive) {
      this.#done = true;
      if (this.#pending.length === 0) {
        // What nginx does: one write, then close(2), without shutdown(2) and without waiting for
        // the peer's FIN (that wait cost a shutdown, an extra read, an epoll change and a trip
        // through the stream's 'end' machinery per connection). Safe because everything the peer
        // sent has been read: close(2) then sends our answer and a FIN, not a reset. An answer
        // the kernel did not take whole (never for < 1 KB on a fresh socket) takes the slow path.
        this.socket.write(out, 'latin1');
        if (this.socket.writableLength === 0) {
          this.socket.destroy();
          return;
        }
        this.socket.end();
      } else {
        this.socket.end(out, 'latin1');
      }
      this.#linger();
      return;
    }
    if (!this.#noDelay) {
      // Only kept-alive connections can have a second answer waiting behind Nagle (pipelining);
      // a connection that answers once and closes is spared the setsockopt.
      this.#noDelay = true;
      this.socket.setNoDelay(true);
    }
    this.socket.write(out, 'latin1');
    const now = performance.now();
    this.deadline = now + (this.#pending.length > 0 ? this.engine.limits.requestTimeoutMs : this.engine.limits.keepAliveTimeoutMs);
    if (this.socket.writableNeedDrain) {
      // A client that pipelines without reading: read no more until it takes our answers.
      this.socket.pause();
      this.socket.once('drain', () => { if (!this.#done) { this.socket.resume(); this.#next(); } });
      return;
    }
    if (this.socket.isPaused()) this.socket.resume();
    if (this.#pending.length > 0) this.#next();
  }

  #fail(problem: HttpProblem): void {
    this.#done = true;
    const { headers } = this.engine.handlers.badRequest(problem, this.remoteAddress);
    const status = problem === 'header-too-large' ? 431 : 400;
    let out = STATUS_LINES.get(status)!;
    for (const name in headers) out += `${name}: ${headers[name]}\r\n`;
    this.socket.end(out + CLOSE_TAIL, 'latin1');
    this.#linger();
  }

  /** Nothing more to answer: close our side (the peer's close or the sweep ends the rest). */
  #finish(): void {
    this.#done = true;
    this.socket.end();
    this.#linger();
  }

  #linger(): void {
    this.#pending = '';
    this.deadline = performance.now() + this.engine.limits.keepAliveTimeoutMs;
  }
}

const CLOSE_TAIL = 'Content-Length: 0\r\nConnection: close\r\n\r\n';

const CONNECTION = Symbol('auth-http-connection');
type ConnectedSocket = Socket & { [CONNECTION]: Connection };
function onSocketData(this: ConnectedSocket, chunk: Buffer): void { this[CONNECTION].onData(chunk); }
function onSocketEnd(this: ConnectedSocket): void { this[CONNECTION].onEnd(); }
function onSocketError(this: ConnectedSocket): void { this.destroy(); } // a reset peer: nothing to answer
function onSocketClose(this: ConnectedSocket): void { const c = this[CONNECTION]; c.engine.connections.delete(c); }

class Engine {
  readonly connections = new Set<Connection>();
  readonly keepAliveTail: string;
  closing = false;
  #sweeper: NodeJS.Timeout | undefined;

  constructor(readonly limits: HttpLimits, readonly handlers: HttpHandlers) {
    this.keepAliveTail = `Content-Length: 0\r\nConnection: keep-alive\r\nKeep-Alive: timeout=${Math.max(1, Math.floor(limits.keepAliveTimeoutMs / 1000))}\r\n\r\n`;
  }

  accept(socket: Socket): void {
    const conn = new Connection(this, socket, socket.remoteAddress);
    this.connections.add(conn);
    // Shared listeners (no closures per connection): the socket finds its connection by symbol.
    (socket as ConnectedSocket)[CONNECTION] = conn;
    socket.on('data', onSocketData);
    socket.on('end', onSocketEnd);
    socket.on('error', onSocketError);
    socket.on('close', onSocketClose);
    this.#sweeper ??= this.#startSweeper();
  }

  /**
   * One timer for all connections instead of one per connection (a timer per connection is a
   * measurable share of a request's cost when every login is a new connection).
   */
  #startSweeper(): NodeJS.Timeout {
    const every = Math.max(25, Math.min(1_000, Math.floor(Math.min(this.limits.requestTimeoutMs, this.limits.keepAliveTimeoutMs) / 4)));
    const t = setInterval(() => {
      const now = performance.now();
      for (const c of this.connections) {
        if (c.deadline === 0 || now < c.deadline) continue;
        if (c.partial && !c.busy) this.handlers.timeout(c.remoteAddress);
        c.socket.destroy();
      }
    }, every);
    t.unref();
    return t;
  }

  stop(): void {
    this.closing = true;
    if (this.#sweeper) clearInterval(this.#sweeper);
    for (const c of this.connections) if (!c.busy) c.socket.destroy();
  }
}

export function createHttpServer(limits: HttpLimits, handlers: HttpHandlers): HttpServer {
  const engine = new Engine(limits, handlers);
  // allowHalfOpen: a client that sends its request and then shuts down its side still gets the answer.
  const server: Server = createServer({ allowHalfOpen: true }, (socket) => engine.accept(socket));
  return {
    listen(port, host) {
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          const addr = server.address();
          resolve({ port: addr && typeof addr === 'object' ? addr.port : port });
        });
      });
    },
    close() {
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        engine.stop();
        // In-flight answers are short; anything still open after the current tick is a stuck peer.
        setImmediate(() => { for (const c of engine.connections) c.socket.destroy(); });
      });
    },
  };
}
