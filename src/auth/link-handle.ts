/**
 * The default socket layer for the auth_http reader (see ./link.ts): libuv's TCP handle, driven
 * the way node:net drives it internally (`process.binding('tcp_wrap')` / `('stream_wrap')`:
 * bind, listen, onconnection, readStart/onread, writeLatin1String, shutdown, close), but without
 * building a net.Socket (a Duplex stream: two stream states, an EventEmitter, a dozen closures)
 * for every login.
 *
 * Why, measured (bench/auth.ts and a bare server answering a constant, wrk, 50 clients, a new
 * connection per request, 2-core EPYC, Node 20.20):
 * - every net.Socket accepted by a server survives V8's young-generation collections until the
 *   next full GC (a socket created and destroyed with no I/O at all does too, as soon as it is
 *   built around a handle; one built without a handle does not). So each scavenge copies and
 *   then promotes every socket closed since the previous one: ~2 MB per ~100 ms at 12k
 *   logins/s, pauses of 2-7 ms during which all 50 waiting logins wait, plus the full GCs that
 *   free them. With the handle used directly, scavenges take ~0.2 ms and nothing is promoted;
 * - CPU per connection of a bare server answering a constant: 45-54 us with net.Socket,
 *   ~38 us (of which ~11 us user) with the handle.
 * The binding is internal API (process.binding is "pending deprecation", DEP0111, but still
 * offered, with tcp_wrap and stream_wrap on its allow-list, through Node 24). So it is checked
 * before use (handleBindingProblem: any missing piece falls back to node:net, logged), the wire
 * tests run over both layers, and `auth.socketLayer: net` turns it off.
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { getSystemErrorMap } from 'node:util';
import type { Link, LinkEvents, Listener } from './link.js';

// ---------------------------------------------------------------- the binding, as used here
interface TcpHandle {
  bind(address: string, port: number): number;
  bind6(address: string, port: number, flags: number): number;
  listen(backlog: number): number;
  getsockname(out: { port?: number }): number;
  getpeername(out: { address?: string }): number;
  readStart(): number;
  readStop(): number;
  writeLatin1String(req: WriteReq, data: string): number;
  shutdown(req: ShutdownReq): number;
  setNoDelay(enable: boolean): number;
  close(callback: (this: TcpHandle) => void): void;
  /** Native setters that abort the process (a CHECK) on anything but a function: never assign null. */
  onread: (this: TcpHandle, buffer: ArrayBuffer | undefined) => void;
  onconnection: (this: TcpHandle, status: number, client?: TcpHandle) => void;
  [LINK]?: HandleLink | undefined;
  [LISTENER]?: HandleListener | undefined;
}
interface WriteReq { handle: TcpHandle; oncomplete: (this: WriteReq, status: number) => void; async: boolean; [LINK]?: HandleLink }
interface ShutdownReq { handle: TcpHandle; oncomplete: (this: ShutdownReq, status: number) => void; [LINK]?: HandleLink }
interface Binding {
  TCP: new (type: number) => TcpHandle;
  SERVER: number;
  SOCKET: number;
  WriteWrap: new () => WriteReq;
  ShutdownWrap: new () => ShutdownReq;
  state: Int32Array;
  kReadBytesOrError: number;
  kArrayBufferOffset: number;
  kLastWriteWasAsync: number;
  UV_EOF: number;
}

const LINK = Symbol('auth-http-link');
const LISTENER = Symbol('auth-http-listener');
const HANDLE_METHODS = ['bind', 'bind6', 'listen', 'getsockname', 'getpeername', 'readStart', 'readStop', 'writeLatin1String',
  'shutdown', 'setNoDelay', 'close'] as const;

type ProcessWithBinding = NodeJS.Process & { binding?: (name: string) => Record<string, unknown> };

/** The binding in the shape this file uses, or why not. */
function loadBinding(): Binding | string {
  const binding = (process as ProcessWithBinding).binding;
  if (typeof binding !== 'function') return 'process.binding is not offered';
  let tcp: Record<string, unknown>;
  let stream: Record<string, unknown>;
  let uv: Record<string, unknown>;
  try {
    tcp = binding.call(process, 'tcp_wrap');
    stream = binding.call(process, 'stream_wrap');
    uv = binding.call(process, 'uv');
  } catch (err) {
    return `process.binding refused: ${(err as Error).message}`;
  }
  const TCP = tcp.TCP as (new (type: number) => TcpHandle) | undefined;
  const constants = tcp.constants as Record<string, unknown> | undefined;
  if (typeof TCP !== 'function' || typeof constants?.SERVER !== 'number' || typeof constants.SOCKET !== 'number') return 'tcp_wrap.TCP missing';
  const proto = TCP.prototype as unknown as Record<string, unknown>;
  const missing = HANDLE_METHODS.filter((m) => typeof proto[m] !== 'function');
  if (missing.length > 0) return `tcp_wrap.TCP lacks ${missing.join(', ')}`;
  const state = stream.streamBaseState;
  const numbers = ['kReadBytesOrError', 'kArrayBufferOffset', 'kLastWriteWasAsync'] as const;
  if (!(state instanceof Int32Array) || numbers.some((k) => typeof stream[k] !== 'number')) return 'stream_wrap.streamBaseState missing';
  if (typeof stream.WriteWrap !== 'function' || typeof stream.ShutdownWrap !== 'function') return 'stream_wrap write/shutdown requests missing';
  if (typeof uv.UV_EOF !== 'number') return 'uv.UV_EOF missing';
  return {
    TCP, SERVER: constants.SERVER, SOCKET: constants.SOCKET,
    WriteWrap: stream.WriteWrap as Binding['WriteWrap'], ShutdownWrap: stream.ShutdownWrap as Binding['ShutdownWrap'],
    state, kReadBytesOrError: stream.kReadBytesOrError as number, kArrayBufferOffset: stream.kArrayBufferOffset as number,
    kLastWriteWasAsync: stream.kLastWriteWasAsync as number, UV_EOF: uv.UV_EOF,
  };
}

/** null when the handle layer can be used here, else the reason it cannot (logged by the caller). */
export function handleBindingProblem(): string | null {
  const b = loadBinding();
  return typeof b === 'string' ? b : null;
}

function uvError(code: number, syscall: string, host: string, port: number): Error {
  const [name, description] = getSystemErrorMap().get(code) ?? [`E${-code}`, 'unknown error'];
  return Object.assign(new Error(`${syscall} ${name}: ${description} ${host}:${port}`), { code: name, errno: code, syscall, address: host, port });
}

// ---------------------------------------------------------------- one connection
class HandleLink implements Link {
  events!: LinkEvents;
  readonly remoteAddress: string | undefined;
  #handle: TcpHandle | null;
  #asyncWrites = 0;
  #drained: (() => void)[] = [];
  #paused = false;
  #readEnded = false;
  #writeEnded = false;
  #ending = false;

  constructor(readonly listener: HandleListener, handle: TcpHandle) {
    this.#handle = handle;
    const peer: { address?: string } = {};
    this.remoteAddress = handle.getpeername(peer) === 0 ? peer.address : undefined;
  }

  write(data: string): boolean {
    const h = this.#handle;
    if (h === null) return true; // closed: nothing can be sent any more
    const b = this.listener.binding;
    const req = this.listener.spareWrite;
    const err = h.writeLatin1String(req, data);
    if (err !== 0) {
      this.destroy(); // EPIPE, ECONNRESET: the peer is gone
      return true;
    }
    if (b.state[b.kLastWriteWasAsync] === 0) return true;
    // The kernel took part of it: libuv keeps the rest and this request until it is written. A
    // request that completed at once is reused for the next write (one allocation saved per login).
    req[LINK] = this;
    this.listener.spareWrite = this.listener.newWriteReq();
    this.#asyncWrites++;
    return false;
  }

  /**
   * Writes libuv still holds. Counted here rather than read from the handle's writeQueueSize, which
   * the binding check does not cover: a missing accessor would read 0 and cut answers short.
   */
  get queued(): number { return this.#handle === null ? 0 : this.#asyncWrites; }

  /** A write that went asynchronous finished (or failed, or was cancelled by close). */
  writeDone(status: number): void {
    this.#asyncWrites--;
    if (status < 0) { this.destroy(); return; }
    if (this.#asyncWrites > 0) return;
    const callbacks = this.#drained;
    this.#drained = [];
    for (const cb of callbacks) cb();
  }

  end(): void {
    const h = this.#handle;
    if (h === null || this.#ending) return;
    this.#ending = true;
    // libuv sends the FIN after the writes still queued, so there is nothing to wait for here.
    const req = new this.listener.binding.ShutdownWrap();
    req.handle = h;
    req.oncomplete = onShutdownDone;
    req[LINK] = this;
    if (h.shutdown(req) !== 0) this.destroy();
  }

  shutdownDone(status: number): void {
    this.#writeEnded = true;
    // Both directions finished (or the FIN could not be sent): nothing more can happen here.
    if (status < 0 || this.#readEnded) this.destroy();
  }

  destroy(): void {
    const h = this.#handle;
    if (h === null) return;
    this.#handle = null;
    h.close(onHandleClosed);
  }

  get destroyed(): boolean { return this.#handle === null; }

  setNoDelay(): void { this.#handle?.setNoDelay(true); }

  pause(): void {
    if (this.#paused) return;
    this.#paused = true;
    this.#handle?.readStop();
  }

  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    if (!this.#readEnded) this.#handle?.readStart();
  }

  get paused(): boolean { return this.#paused; }

  onceDrained(callback: () => void): void {
    if (this.#asyncWrites === 0) queueMicrotask(callback);
    else this.#drained.push(callback);
  }

  read(buffer: ArrayBuffer | undefined): void {
    if (this.#handle === null) return;
    const b = this.listener.binding;
    const n = b.state[b.kReadBytesOrError]!;
    if (n > 0 && buffer !== undefined) {
      this.events.data(Buffer.from(buffer, b.state[b.kArrayBufferOffset], n).toString('latin1'));
      return;
    }
    if (n === 0) return;
    if (n !== b.UV_EOF) {
      this.destroy(); // a reset peer: nothing to answer
      return;
    }
    this.#readEnded = true; // libuv stops reading by itself after EOF
    this.events.end();
    if (this.#writeEnded) this.destroy();
  }

  closed(): void {
    this.events.close();
  }
}

// Shared callbacks (no closures per connection): each finds its link through the handle or request.
function onRead(this: TcpHandle, buffer: ArrayBuffer | undefined): void { this[LINK]?.read(buffer); }
function onWriteDone(this: WriteReq, status: number): void {
  const link = this[LINK];
  this[LINK] = undefined;
  link?.writeDone(status);
}
function onShutdownDone(this: ShutdownReq, status: number): void {
  const link = this[LINK];
  this[LINK] = undefined;
  link?.shutdownDone(status);
}
function onHandleClosed(this: TcpHandle): void {
  const link = this[LINK];
  this[LINK] = undefined;
  link?.closed();
}
function onConnection(this: TcpHandle, status: number, client?: TcpHandle): void {
  // A failed accept (EMFILE …): libuv tries again on the next readiness; nothing to answer.
  if (status !== 0 || client === undefined) return;
  this[LISTENER]?.accepted(client);
}

// ---------------------------------------------------------------- the listener
class HandleListener implements Listener {
  readonly binding: Binding;
  spareWrite: WriteReq;
  #server: TcpHandle | null = null;
  #closed = false;

  constructor(readonly accept: (link: Link) => LinkEvents) {
    const b = loadBinding();
    if (typeof b === 'string') throw new Error(`auth_http socket layer "handle" unavailable: ${b}`);
    this.binding = b;
    this.spareWrite = this.newWriteReq();
  }

  newWriteReq(): WriteReq {
    const req = new this.binding.WriteWrap();
    req.oncomplete = onWriteDone;
    req.async = false;
    return req;
  }

  accepted(client: TcpHandle): void {
    const link = new HandleLink(this, client);
    client[LINK] = link;
    client.onread = onRead;
    link.events = this.accept(link);
    if (client.readStart() !== 0) link.destroy();
  }

  async listen(port: number, host: string): Promise<{ port: number }> {
    if (this.#server) throw new Error('already listening');
    const address = isIP(host) !== 0 ? host : (await lookup(host)).address;
    // close() during the lookup found nothing to close: do not start listening behind its back.
    if (this.#closed) throw new Error('auth_http listener closed while starting');
    const server = new this.binding.TCP(this.binding.SERVER);
    let err = isIP(address) === 6 ? server.bind6(address, port, 0) : server.bind(address, port);
    // 511: node:net's default backlog (the kernel caps it at somaxconn).
    if (err === 0) err = server.listen(511);
    if (err !== 0) {
      server.close(() => undefined);
      throw uvError(err, 'listen', host, port);
    }
    server[LISTENER] = this;
    server.onconnection = onConnection;
    this.#server = server;
    const out: { port?: number } = {};
    server.getsockname(out);
    return { port: out.port ?? port };
  }

  close(): Promise<void> {
    this.#closed = true;
    const server = this.#server;
    this.#server = null;
    if (!server) return Promise.resolve();
    server[LISTENER] = undefined;
    return new Promise((resolve) => server.close(() => resolve()));
  }
}

export function createHandleListener(accept: (link: Link) => LinkEvents): Listener {
  return new HandleListener(accept);
}
