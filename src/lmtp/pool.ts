/**
 * Backend LMTP sessions, pooled per slot. A session is keyed by slot name + ip:port, so when a
 * store fails over, routing names the new master's slot and new deliveries open sessions there;
 * sessions to the old master are never handed out for that store again and idle out.
 *
 * A session is reused only when clean: after a transaction that ended with its final replies (the
 * backend is back at "no transaction"), else after a successful RSET. Any error drops it.
 */
import type { Logger } from 'pino';
import { BackendError } from '../core/errors.js';
import { isSuccess } from '../core/replies.js';
import { BackendSession, type BackendTarget, type BackendTimeouts } from './backend-client.js';
import type { LmtpMetrics, PoolStats } from './metrics.js';

export interface PoolOptions {
  lhloName: string;
  timeouts: BackendTimeouts;
  maxSessionsPerSlot: number;
  idleTimeoutMs: number;
  logger: Logger;
  metrics?: Pick<LmtpMetrics, 'backendConnects' | 'backendFailures'>;
}

interface Waiter {
  resolve(s: BackendSession): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
}

interface SlotPool {
  target: BackendTarget;
  idle: Array<{ session: BackendSession; timer: NodeJS.Timeout }>;
  busy: Set<BackendSession>;
  opening: number;
  waiters: Waiter[];
}

export function poolKey(t: BackendTarget): string {
  return `${t.slot}|${t.host}:${t.port}`;
}

export class BackendPool {
  readonly #opts: PoolOptions;
  readonly #pools = new Map<string, SlotPool>();
  #closed = false;

  constructor(opts: PoolOptions) {
    this.#opts = opts;
  }

  /**
   * A clean session to `target`, opened or reused; waits up to `waitMs` for a free one.
   * `fresh`: never an idle one (a retry after a pooled session turned out dead).
   */
  acquire(target: BackendTarget, waitMs: number, fresh = false): Promise<BackendSession> {
    if (this.#closed) return Promise.reject(new BackendError('BACKEND_UNREACHABLE', target.slot, 'backend pool is closed'));
    const key = poolKey(target);
    let p = this.#pools.get(key);
    if (!p) {
      p = { target, idle: [], busy: new Set(), opening: 0, waiters: [] };
      this.#pools.set(key, p);
    }
    const pool = p;
    const ready = fresh ? null : this.#takeIdle(pool);
    if (ready) return Promise.resolve(ready);
    if (pool.busy.size + pool.opening < this.#opts.maxSessionsPerSlot) return this.#open(pool);
    return new Promise<BackendSession>((resolve, reject) => {
      const waiter: Waiter = {
        resolve, reject,
        timer: setTimeout(() => {
          pool.waiters.splice(pool.waiters.indexOf(waiter), 1);
          reject(new BackendError('BACKEND_TIMEOUT', target.slot,
            `no free session to slot ${target.slot} within ${waitMs} ms (${this.#opts.maxSessionsPerSlot} busy)`));
        }, waitMs),
      };
      pool.waiters.push(waiter);
    });
  }

  /**
   * Gives a session back. `clean`: its last transaction ended with final replies (or it never
   * sent MAIL), so it can carry a new one at once; otherwise it is RSET first. A session in DATA
   * is discarded.
   */
  release(session: BackendSession, clean: boolean): void {
    const pool = this.#pools.get(poolKey(session.target));
    // In DATA (or waiting for its 354) an RSET would be read as a line of the message: close it,
    // which also makes the backend discard the message.
    if (!pool || !session.alive || this.#closed || session.inData) {
      this.discard(session);
      return;
    }
    if (clean) {
      this.#giveBack(pool, session);
      return;
    }
    session.rset().then(
      (r) => (isSuccess(r) ? this.#giveBack(pool, session) : this.discard(session)),
      () => this.discard(session),
    );
  }

  /** Drops a session (after any error, or a transaction we cannot vouch for). */
  discard(session: BackendSession): void {
    session.destroy();
    const pool = this.#pools.get(poolKey(session.target));
    if (!pool) return;
    this.#forget(pool, session);
  }

  stats(): PoolStats[] {
    const bySlot = new Map<string, PoolStats>();
    for (const p of this.#pools.values()) {
      const s = bySlot.get(p.target.slot) ?? { slot: p.target.slot, idle: 0, busy: 0 };
      s.idle += p.idle.length;
      s.busy += p.busy.size;
      bySlot.set(p.target.slot, s);
    }
    return [...bySlot.values()];
  }

  /** Rejects waiters, QUITs idle sessions and destroys busy ones. */
  async close(): Promise<void> {
    this.#closed = true;
    const quits: Array<Promise<void>> = [];
    for (const p of this.#pools.values()) {
      for (const w of p.waiters.splice(0)) {
        clearTimeout(w.timer);
        w.reject(new BackendError('BACKEND_UNREACHABLE', p.target.slot, 'backend pool is closing'));
      }
      for (const { session, timer } of p.idle.splice(0)) {
        clearTimeout(timer);
        quits.push(session.quit());
      }
      for (const s of p.busy) s.destroy();
      p.busy.clear();
    }
    await Promise.all(quits);
  }

  #takeIdle(pool: SlotPool): BackendSession | null {
    while (pool.idle.length > 0) {
      const entry = pool.idle.pop();
      if (!entry) break;
      clearTimeout(entry.timer);
      if (entry.session.alive) {
        pool.busy.add(entry.session);
        entry.session.uses++;
        return entry.session;
      }
    }
    return null;
  }

  async #open(pool: SlotPool): Promise<BackendSession> {
    pool.opening++;
    const slot = pool.target.slot;
    try {
      const session = await BackendSession.open(pool.target, { lhloName: this.#opts.lhloName, timeouts: this.#opts.timeouts });
      this.#opts.metrics?.backendConnects.inc({ slot });
      session.onClose((err) => {
        if (!session.closing) this.#opts.metrics?.backendFailures.inc({ slot, code: err.code });
        this.#forget(pool, session);
      });
      if (this.#closed) {
        session.destroy();
        throw new BackendError('BACKEND_UNREACHABLE', slot, 'backend pool is closing');
      }
      pool.busy.add(session);
      session.uses++;
      return session;
    } catch (err) {
      if (err instanceof BackendError) this.#opts.metrics?.backendFailures.inc({ slot, code: err.code });
      this.#opts.logger.warn({ slot, target: `${pool.target.host}:${pool.target.port}`, err }, 'lmtp_backend_connect_failed');
      throw err;
    } finally {
      pool.opening--;
    }
  }

  #giveBack(pool: SlotPool, session: BackendSession): void {
    const waiter = pool.waiters.shift();
    if (waiter) {
      clearTimeout(waiter.timer);
      session.uses++;
      waiter.resolve(session); // stays busy
      return;
    }
    pool.busy.delete(session);
    const timer = setTimeout(() => {
      const i = pool.idle.findIndex((e) => e.session === session);
      if (i !== -1) pool.idle.splice(i, 1);
      void session.quit();
    }, this.#opts.idleTimeoutMs);
    timer.unref();
    pool.idle.push({ session, timer });
  }

  /** A session left the pool: free its place and let a waiter open a new one. */
  #forget(pool: SlotPool, session: BackendSession): void {
    pool.busy.delete(session);
    const i = pool.idle.findIndex((e) => e.session === session);
    if (i !== -1) {
      clearTimeout(pool.idle[i]?.timer);
      pool.idle.splice(i, 1);
    }
    const waiter = pool.waiters[0];
    if (waiter && pool.busy.size + pool.opening < this.#opts.maxSessionsPerSlot && !this.#closed) {
      pool.waiters.shift();
      clearTimeout(waiter.timer);
      this.#open(pool).then(waiter.resolve, waiter.reject);
    }
    if (pool.idle.length === 0 && pool.busy.size === 0 && pool.opening === 0 && pool.waiters.length === 0) {
      this.#pools.delete(poolKey(pool.target));
    }
  }
}
