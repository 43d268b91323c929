/**
 * Our own incremental LMTP client for one backend session (see LIBRARIES.md for why no npm client
 * fits): RCPT verdicts come back one at a time as they arrive, DATA is pushed chunk by chunk with
 * backpressure, and after the final dot there is one reply per accepted recipient.
 *
 * Replies are matched to commands strictly in order: every command pushes one waiter, every reply
 * resolves the oldest one. That makes pipelining safe. Any failure (timeout, close, protocol
 * error) destroys the session and rejects every waiter with one BackendError, whose code decides
 * the 451 postfix gets (reply.ts).
 */
import { connect, type Socket } from 'node:net';
import { BackendError } from '../core/errors.js';
import { formatReply, type Reply } from '../core/replies.js';
import { DotStuffer, ReplyParser, type WireReply } from './wire.js';

export interface BackendTarget {
  host: string;
  port: number;
  /** Slot name, for errors, metrics and logs. */
  slot: string;
}

/** Named per-phase timeouts (ms), from config lmtp.backend. */
export interface BackendTimeouts {
  connect: number;
  greeting: number;
  /** Each command's reply (LHLO, MAIL, RCPT, DATA's 354, RSET). */
  command: number;
  /** Max time the backend may refuse DATA bytes (only counted while our writes are blocked). */
  data: number;
  /** After the final dot: all per-recipient replies. */
  finalReply: number;
}

export interface BackendSessionOptions {
  lhloName: string;
  timeouts: BackendTimeouts;
}

interface Waiter {
  resolve(r: WireReply): void;
  reject(e: BackendError): void;
  timer: NodeJS.Timeout;
}

/**
 * Scratch space for every session's reads (see the constructor). Shared safely: each read is
 * parsed to the end, synchronously, before the next one can land in it.
 */
const READ_BUFFER = Buffer.alloc(16 * 1024);

type BackendCode = 'BACKEND_UNREACHABLE' | 'BACKEND_TIMEOUT' | 'BACKEND_LOST' | 'BACKEND_PROTOCOL';

export class BackendSession {
  readonly target: BackendTarget;
  /** SIZE the backend advertised in its LHLO reply (null: none). */
  size: number | null = null;
  pipelining = false;
  eightBitMime = false;
  /** Transactions completed on this session (for pool metrics and tests). */
  transactions = 0;
  /** Times the pool handed this session out; more than 1: it sat in the pool in between. */
  uses = 0;
  /** Replies received so far: unchanged since a point means nothing sent since was acknowledged. */
  repliesReceived = 0;

  readonly #socket: Socket;
  readonly #timeouts: BackendTimeouts;
  readonly #parser: ReplyParser;
  readonly #waiters: Waiter[] = [];
  readonly #closeListeners = new Set<(err: BackendError) => void>();
  #failure: BackendError | null = null;
  #closing = false;
  #corked = false;
  #connected = false;
  /** Greeting and LHLO done: from here a 421 ends the session (see #onReply). */
  #established = false;
  #stuffer: DotStuffer | null = null;
  /** From sending DATA until the final dot (or a DATA refusal): no command may be written. */
  #inData = false;
  #stallTimer: NodeJS.Timeout | null = null;
  #drainWaiters: Array<{ resolve(): void; reject(e: BackendError): void }> = [];

  private constructor(target: BackendTarget, timeouts: BackendTimeouts) {
    this.target = target;
    this.#timeouts = timeouts;
    this.#parser = new ReplyParser((r) => this.#onReply(r),
      (e) => this.#fail('BACKEND_PROTOCOL', e.message, e));
    // Replies are read into one reused buffer (net's `onread`) instead of a new 64 KB allocation
    // per read pushed through a Readable stream: the parser copies what it keeps (a latin1 string)
    // before returning, and a RCPT-heavy delivery reads a few small replies per message.
    this.#socket = connect({ host: target.host, port: target.port,
      onread: { buffer: READ_BUFFER, callback: (n) => { this.#parser.feed(READ_BUFFER.subarray(0, n)); return true; } } });
    this.#socket.setNoDelay(true);
    this.#socket.on('drain', () => this.#onDrain());
    this.#socket.on('error', (err) => this.#connected
      ? this.#fail('BACKEND_LOST', `connection to ${this.#where()} failed: ${err.message}`, err)
      : this.#fail('BACKEND_UNREACHABLE', `cannot connect to ${this.#where()}: ${err.message}`, err));
    this.#socket.on('close', () => this.#fail('BACKEND_LOST', `${this.#where()} closed the connection`));
  }

  /** Connects, waits for the 220 greeting and sends LHLO. Rejects with a BackendError. */
  static async open(target: BackendTarget, options: BackendSessionOptions): Promise<BackendSession> {
    const s = new BackendSession(target, options.timeouts);
    await s.#handshake(options.lhloName);
    return s;
  }

  /** True while the session can carry a new command (not failed). */
  get alive(): boolean {
    return this.#failure === null;
  }

  /**
   * True from DATA until the final dot is written: the backend reads everything as message
   * bytes, so the session cannot be RSET or reused, only closed (which discards the message).
   */
  get inData(): boolean {
    return this.#inData;
  }

  /** True once we chose to end the session (QUIT, destroy): its close is not a backend failure. */
  get closing(): boolean {
    return this.#closing;
  }

  get failure(): BackendError | null {
    return this.#failure;
  }

  /** Called once when the session fails or closes, with the error that ended it. */
  onClose(listener: (err: BackendError) => void): () => void {
    if (this.#failure) {
      const f = this.#failure;
      queueMicrotask(() => listener(f));
      return () => undefined;
    }
    this.#closeListeners.add(listener);
    return () => this.#closeListeners.delete(listener);
  }

  async #handshake(lhloName: string): Promise<void> {
    const connected = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => this.#fail('BACKEND_UNREACHABLE',
        `connect to ${this.#where()} timed out after ${this.#timeouts.connect} ms`), this.#timeouts.connect);
      this.#socket.once('connect', () => { clearTimeout(timer); this.#connected = true; resolve(); });
      this.onClose((e) => { clearTimeout(timer); reject(e); });
    });
    await connected;
    const greeting = await this.#expect('greeting', this.#timeouts.greeting);
    if (greeting.code !== 220) {
      throw this.#fail('BACKEND_PROTOCOL', `${this.#where()} greeted with ${greeting.code} ${greeting.lines[0] ?? ''}`);
    }
    const lhlo = await this.#command(`LHLO ${lhloName}`, 'LHLO', this.#timeouts.command);
    if (lhlo.code !== 250) {
      throw this.#fail('BACKEND_PROTOCOL', `${this.#where()} refused LHLO: ${lhlo.code} ${lhlo.lines[0] ?? ''}`);
    }
    for (const line of lhlo.lines.slice(1)) {
      const [kw, arg] = line.trim().toUpperCase().split(/\s+/);
      if (kw === 'PIPELINING') this.pipelining = true;
      else if (kw === '8BITMIME') this.eightBitMime = true;
      else if (kw === 'SIZE') this.size = arg && /^\d+$/.test(arg) && Number(arg) > 0 ? Number(arg) : null;
    }
    this.#established = true;
  }

  /** MAIL FROM:<addr> plus optional ESMTP parameters (" BODY=8BITMIME SIZE=123"). */
  async mailFrom(address: string, params = ''): Promise<Reply> {
    return (await this.#command(`MAIL FROM:<${address}>${params}`, 'MAIL', this.#timeouts.command)).reply;
  }

  async rcpt(address: string): Promise<Reply> {
    return (await this.#command(`RCPT TO:<${address}>`, 'RCPT', this.#timeouts.command)).reply;
  }

  async rset(): Promise<Reply> {
    return (await this.#command('RSET', 'RSET', this.#timeouts.command)).reply;
  }

  /** Sends DATA. On 354 the session is in data mode: call writeData()… then endData(). */
  async beginData(): Promise<Reply> {
    const p = this.#command('DATA', 'DATA', this.#timeouts.command);
    this.#inData = true;
    const r = await p;
    if (r.code === 354) this.#stuffer = new DotStuffer();
    else this.#inData = false;
    return r.reply;
  }

  /**
   * Writes one chunk of the (unstuffed) message. Returns false when the socket buffer is full:
   * wait for waitDrain() before writing more. The data timeout runs only while we are blocked
   * by the backend, never while the backend waits for us.
   */
  writeData(chunk: Buffer): boolean {
    if (this.#failure) return true; // a failed session has nothing to pace; the caller drops it
    if (!this.#stuffer) throw new Error('writeData outside DATA');
    let ok = true;
    this.#corkForTick();
    for (const part of this.#stuffer.stuff(chunk)) ok = this.#socket.write(part);
    if (!ok && !this.#stallTimer) {
      this.#stallTimer = setTimeout(() => this.#fail('BACKEND_TIMEOUT',
        `${this.#where()} accepted no DATA bytes for ${this.#timeouts.data} ms`), this.#timeouts.data);
    }
    return ok;
  }

  /** Resolves when the socket can take more; rejects if the session fails meanwhile. */
  waitDrain(): Promise<void> {
    if (this.#failure) return Promise.reject(this.#failure);
    if (!this.#socket.writableNeedDrain) return Promise.resolve();
    return new Promise((resolve, reject) => this.#drainWaiters.push({ resolve, reject }));
  }

  /**
   * Sends the final dot and collects one reply per accepted recipient, in RCPT order. A reply that
   * never comes (close, timeout) is the session's BackendError in its place: the recipients
   * answered before the failure keep their real verdicts.
   */
  async endData(recipients: number): Promise<Array<Reply | BackendError>> {
    if (!this.#stuffer) throw new Error('endData outside DATA');
    const terminator = this.#stuffer.end();
    this.#stuffer = null;
    this.#inData = false;
    const pending: Array<Promise<WireReply>> = [];
    if (!this.#failure) {
      this.#corkForTick();
      this.#socket.write(terminator);
    }
    for (let i = 0; i < recipients; i++) pending.push(this.#expect('final reply', this.#timeouts.finalReply));
    const settled = await Promise.allSettled(pending);
    this.#clearStall();
    this.transactions++;
    return settled.map((s) => s.status === 'fulfilled' ? s.value.reply
      : s.reason instanceof BackendError ? s.reason
      : new BackendError('BACKEND_LOST', this.target.slot, String(s.reason)));
  }

  /** Polite close: QUIT, then end the socket (never waits longer than the command timeout). */
  async quit(): Promise<void> {
    if (this.#failure) return;
    this.#closing = true;
    try {
      await this.#command('QUIT', 'QUIT', Math.min(this.#timeouts.command, 2_000));
    } catch {
      // The session is going away either way; a QUIT that fails changes nothing.
    }
    this.destroy();
  }

  /** Closes now. Pending commands are rejected with BACKEND_LOST (or `reason`). */
  destroy(reason?: string): void {
    this.#closing = true;
    this.#fail('BACKEND_LOST', reason ?? `session to ${this.#where()} closed by storeroute`);
  }

  #where(): string {
    return `slot ${this.target.slot} (${this.target.host}:${this.target.port})`;
  }

  #command(line: string, phase: string, timeoutMs: number): Promise<WireReply> {
    if (this.#failure) return Promise.reject(this.#failure);
    if (this.#inData) {
      // Defence in depth: written now, the command would become a line of someone's message.
      // Refused without failing the session; the caller drops it.
      return Promise.reject(new BackendError('BACKEND_PROTOCOL', this.target.slot,
        `${phase} refused: ${this.#where()} is in DATA`));
    }
    const p = this.#expect(phase, timeoutMs);
    this.#corkForTick();
    this.#socket.write(line + '\r\n');
    return p;
  }

  /**
   * Everything written in one tick leaves in one segment (MAIL + RCPT, a chunk's stuffed parts,
   * the last chunk + the dot): each write is a syscall and a wake-up of the backend.
   */
  #corkForTick(): void {
    if (this.#corked) return;
    this.#corked = true;
    this.#socket.cork();
    process.nextTick(() => {
      this.#corked = false;
      this.#socket.uncork();
    });
  }

  #expect(phase: string, timeoutMs: number): Promise<WireReply> {
    if (this.#failure) return Promise.reject(this.#failure);
    return new Promise<WireReply>((resolve, reject) => {
      const timer = setTimeout(() => this.#fail('BACKEND_TIMEOUT',
        `${this.#where()}: no ${phase} reply within ${timeoutMs} ms`), timeoutMs);
      this.#waiters.push({ resolve, reject, timer });
    });
  }

  #onReply(r: WireReply): void {
    if (r.code === 421 && this.#established) {
      // RFC 5321 §3.8: 421 is the server closing the channel, whichever command it answers (or
      // none: an idle timeout). The command failed and the session is over: it fails as a lost
      // connection (its recipients get 451, the pool drops it), never as a verdict to relay,
      // since a 421 relayed to postfix would close the whole client session. Not counted in
      // repliesReceived: it acknowledged nothing, so a pooled session that says 421 to the
      // MAIL of its next transaction is retried like one that closed (transaction.ts).
      this.#fail('BACKEND_LOST', `${this.#where()} is closing the session: ${formatReply(r.reply)}`);
      return;
    }
    const w = this.#waiters.shift();
    if (!w) {
      this.#fail('BACKEND_PROTOCOL', `${this.#where()} sent an unexpected reply ${r.code} ${r.lines[0] ?? ''}`);
      return;
    }
    clearTimeout(w.timer);
    this.repliesReceived++;
    w.resolve(r);
  }

  #onDrain(): void {
    this.#clearStall();
    const waiters = this.#drainWaiters;
    this.#drainWaiters = [];
    for (const w of waiters) w.resolve();
  }

  #clearStall(): void {
    if (this.#stallTimer) clearTimeout(this.#stallTimer);
    this.#stallTimer = null;
  }

  /** Ends the session once; every waiter and listener learns the same error. Returns it. */
  #fail(code: BackendCode, message: string, cause?: unknown): BackendError {
    if (this.#failure) return this.#failure;
    const err = new BackendError(code, this.target.slot, message, cause === undefined ? undefined : { cause });
    this.#failure = err;
    this.#clearStall();
    this.#socket.destroy();
    for (const w of this.#waiters.splice(0)) {
      clearTimeout(w.timer);
      w.reject(err);
    }
    for (const d of this.#drainWaiters.splice(0)) d.reject(err);
    for (const l of this.#closeListeners) l(err);
    this.#closeListeners.clear();
    return err;
  }
}
