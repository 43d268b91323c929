/**
 * The HTTP side of auth_http: a small request reader over a TCP link (./link.ts: libuv's TCP
 * handle by default, node:net as the fallback) instead of node:http. Heads are parsed in
 * ./http-head.ts.
 *
 * Why not node:http: nginx's auth_http request is a fixed, tiny subset of HTTP (a GET with a few
 * headers, no body, one request per connection unless keep-alive is configured), and nginx opens
 * a new connection for every login, so per-connection cost is what limits us. Profiles of the
 * node:http version were dominated by node:http's connection handling (IncomingMessage and
 * ServerResponse per request, parser set-up, header objects, timers per connection) and socket
 * writes; with this reader storeroute, doing its whole lookup, costs about what a minimal
 * node:http server answering a constant costs (bench/auth.ts). What remained was net.Socket itself
 * (CPU, and GC: see ./link-handle.ts) and the kernel (accept, getpeername, write, close): a bare
 * node:net server that answers a constant measured ~45-80 us per connection here against nginx's
 * ~25-30 us; over the TCP handle, storeroute's whole request now costs ~45-60 us.
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
import { headEnd, parseHead, type HttpProblem } from './http-head.js';
import { createListener, type Link, type LinkEvents, type SocketLayer } from './link.js';

export { parseHead, type HttpProblem } from './http-head.js';

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

/** One client connection: reads heads, hands requests over one at a time, writes answers. */
class Connection implements Exchange, LinkEvents {
  #pending = '';
  #busy = false;
  #keepAlive = false;
  #done = false;
  #peerEnded = false;
  #noDelay = false;
  /** performance.now() past which the sweep drops the connection; 0 while we are the slow side. */
  deadline: number;

  constructor(readonly engine: Engine, readonly link: Link) {
    this.deadline = performance.now() + engine.limits.requestTimeoutMs;
  }

  get busy(): boolean { return this.#busy; }
  get partial(): boolean { return this.#pending.length > 0; }

  data(chunk: string): void {
    if (this.#done) return;
    if (this.#pending.length === 0 && !this.#busy) this.deadline = performance.now() + this.engine.limits.requestTimeoutMs;
    this.#pending = this.#pending.length === 0 ? chunk : this.#pending + chunk;
    if (this.#busy) {
      // Pipelined bytes wait for the current answer; stop reading if they pile up.
      if (this.#pending.length > this.engine.limits.maxHeaderBytes) this.link.pause();
      return;
    }
    this.#next();
  }

  end(): void {
    // Already answered and ended: the link closes by itself.
    if (this.#done) return;
    this.#peerEnded = true;
    // Answer a request in progress first (respond closes); otherwise nothing more can come.
    if (!this.#busy) this.#finish();
  }

  close(): void {
    this.engine.closed(this);
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
    this.engine.handlers.request({ method: head.method, target: head.target, headers: head.headers, remoteAddress: this.link.remoteAddress }, this);
  }

  respond(status: number, headers: Readonly<Record<string, string>>): void {
    if (!this.#busy) throw new Error('respond() without a request in progress');
    this.#busy = false;
    const link = this.link;
    if (link.destroyed) return;
    const keepAlive = this.#keepAlive && !this.#peerEnded && !this.engine.closing;
    let out = STATUS_LINES.get(status) ?? `HTTP/1.1 ${status} Unknown\r\n`;
    for (const name in headers) out += `${name}: ${headers[name]}\r\n`;
    out += keepAlive ? this.engine.keepAliveTail : CLOSE_TAIL;
    if (!keepAlive) {
      this.#done = true;
      link.write(out);
      if (this.#pending.length === 0 && link.queued === 0) {
        // What nginx does: one write, then close(2), without shutdown(2) and without waiting for
        // the peer's FIN (that wait cost a shutdown, an extra read, an epoll change and a trip
        // through the stream's 'end' machinery per connection). Safe because everything the peer
        // sent has been read and the kernel took the whole answer: close(2) then sends it and a
        // FIN, not a reset. Otherwise (unread pipelined bytes, an answer the kernel did not take
        // whole: never for < 1 KB on a fresh socket) the slow path: FIN after the answer.
        link.destroy();
        return;
      }
      link.end();
      this.#linger();
      return;
    }
    if (!this.#noDelay) {
      // Only kept-alive connections can have a second answer waiting behind Nagle (pipelining);
      // a connection that answers once and closes is spared the setsockopt.
      this.#noDelay = true;
      link.setNoDelay();
    }
    const flowing = link.write(out);
    const now = performance.now();
    this.deadline = now + (this.#pending.length > 0 ? this.engine.limits.requestTimeoutMs : this.engine.limits.keepAliveTimeoutMs);
    if (!flowing) {
      // A client that pipelines without reading: read no more until it takes our answers.
      link.pause();
      link.onceDrained(() => { if (!this.#done && !link.destroyed) { link.resume(); this.#next(); } });
      return;
    }
    if (link.paused) link.resume();
    if (this.#pending.length > 0) this.#next();
  }

  #fail(problem: HttpProblem): void {
    this.#done = true;
    const { headers } = this.engine.handlers.badRequest(problem, this.link.remoteAddress);
    const status = problem === 'header-too-large' ? 431 : 400;
    let out = STATUS_LINES.get(status)!;
    for (const name in headers) out += `${name}: ${headers[name]}\r\n`;
    this.link.write(out + CLOSE_TAIL);
    this.link.end();
    this.#linger();
  }

  /** Nothing more to answer: close our side (the peer's close or the sweep ends the rest). */
  #finish(): void {
    this.#done = true;
    this.link.end();
    this.#linger();
  }

  #linger(): void {
    this.#pending = '';
    this.deadline = performance.now() + this.engine.limits.keepAliveTimeoutMs;
  }
}

const CLOSE_TAIL = 'Content-Length: 0\r\nConnection: close\r\n\r\n';

class Engine {
  readonly connections = new Set<Connection>();
  readonly keepAliveTail: string;
  closing = false;
  #sweeper: NodeJS.Timeout | undefined;
  #allClosed: (() => void) | undefined;

  constructor(readonly limits: HttpLimits, readonly handlers: HttpHandlers) {
    this.keepAliveTail = `Content-Length: 0\r\nConnection: keep-alive\r\nKeep-Alive: timeout=${Math.max(1, Math.floor(limits.keepAliveTimeoutMs / 1000))}\r\n\r\n`;
  }

  accept(link: Link): Connection {
    const conn = new Connection(this, link);
    this.connections.add(conn);
    this.#sweeper ??= this.#startSweeper();
    return conn;
  }

  closed(conn: Connection): void {
    this.connections.delete(conn);
    if (this.connections.size === 0 && this.#allClosed) this.#allClosed();
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
        if (c.partial && !c.busy) this.handlers.timeout(c.link.remoteAddress);
        c.link.destroy();
      }
    }, every);
    t.unref();
    return t;
  }

  /** Closes idle connections now; resolves once every connection has closed. */
  stop(): Promise<void> {
    this.closing = true;
    if (this.#sweeper) clearInterval(this.#sweeper);
    for (const c of this.connections) if (!c.busy) c.link.destroy();
    // In-flight answers are short; anything still open after the current tick is a stuck peer.
    setImmediate(() => { for (const c of this.connections) c.link.destroy(); });
    if (this.connections.size === 0) return Promise.resolve();
    return new Promise((resolve) => { this.#allClosed = resolve; });
  }
}

export interface HttpServerOptions {
  /** The socket layer (src/auth/link.ts); `handle` falls back to `net` when unavailable. */
  socketLayer?: SocketLayer;
  /** Told once when `handle` was asked for but `net` is used, and why. */
  onFallback?: (reason: string) => void;
}

export function createHttpServer(limits: HttpLimits, handlers: HttpHandlers, options: HttpServerOptions = {}): HttpServer {
  const engine = new Engine(limits, handlers);
  const listener = createListener(options.socketLayer ?? 'handle', (link) => engine.accept(link), options.onFallback);
  return {
    listen: (port, host) => listener.listen(port, host),
    async close() {
      await Promise.all([listener.close(), engine.stop()]);
    },
  };
}
