/**
 * Admin connections to one slot, reused across users, at most `max` at once.
 *
 * No retry storm: the first connection to a slot is opened alone and the others only once it has
 * logged in, so a wrong password costs one failed login per slot (Cyrus delays each failure by
 * ~3 s and logs it). A slot whose login is refused or that cannot be reached is then marked failed
 * for the rest of the run: every later request gets the same error at once, without connecting, and
 * the users on it are reported as not checked. A connection that breaks mid-command is dropped and
 * replaced by the next request.
 */
import type { Logger } from 'pino';
import { CheckError } from './errors.js';
import { CyrusConnection, type ImapSettings, type SlotTarget } from './imap.js';

export class SlotPool {
  readonly slot: SlotTarget;
  readonly #imap: ImapSettings;
  readonly #log: Logger;
  readonly #max: number;
  readonly #idle: CyrusConnection[] = [];
  readonly #waiters: Array<() => void> = [];
  readonly #connecting = new Set<Promise<CyrusConnection>>();
  #open = 0;
  /** Resolves once the first login worked; rejects with the slot's failure. */
  #ready: Promise<void> | null = null;
  #failure: CheckError | null = null;
  #closed = false;

  constructor(slot: SlotTarget, imap: ImapSettings, max: number, log: Logger) {
    this.slot = slot;
    this.#imap = imap;
    this.#max = Math.max(1, max);
    this.#log = log;
  }

  /** The error that took this slot out of the run, if any. */
  get failure(): CheckError | null {
    return this.#failure;
  }

  /** Runs `fn` on an admin connection; the connection goes back to the pool unless it broke. */
  async use<T>(fn: (c: CyrusConnection) => Promise<T>): Promise<T> {
    const conn = await this.#acquire();
    try {
      return await fn(conn);
    } finally {
      this.#release(conn);
    }
  }

  /**
   * A connection authorised as `user` (STATUS fallback, deep compare), not pooled: the authzid is
   * fixed at login. Refused at once when the slot already failed.
   */
  async openAs(user: string): Promise<CyrusConnection> {
    if (this.#failure) throw this.#failure;
    try {
      return await CyrusConnection.open(this.slot, this.#imap, this.#log, user);
    } catch (err) {
      // A refused proxy login is the same configuration problem for every user: stop asking.
      if (err instanceof CheckError && err.code === 'IMAP_AUTH_FAILED') this.#fail(err);
      throw err;
    }
  }

  #fail(err: CheckError): void {
    if (!this.#failure) this.#log.warn({ slot: this.slot.name, code: err.code, err: err.message }, 'check_slot_failed');
    this.#failure ??= err;
    for (const w of this.#waiters.splice(0)) w();
  }

  async #acquire(): Promise<CyrusConnection> {
    for (;;) {
      if (this.#failure) throw this.#failure;
      if (this.#closed) throw new CheckError('IMAP_UNREACHABLE', `slot ${this.slot.name}: the check is closing`, { slot: this.slot.name });
      const idle = this.#idle.pop();
      if (idle) {
        if (!idle.broken) return idle;
        this.#open--;
        continue;
      }
      if (!this.#ready) {
        // The very first connection, alone: it decides whether this slot can be used at all.
        const first = this.#connect();
        this.#ready = first.then(() => undefined, () => undefined);
        return first;
      }
      await this.#ready;
      if (this.#failure) throw this.#failure;
      if (this.#open < this.#max) return this.#connect();
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
  }

  #connect(): Promise<CyrusConnection> {
    const p = this.#login();
    this.#connecting.add(p);
    void p.finally(() => this.#connecting.delete(p)).catch(() => undefined);
    return p;
  }

  async #login(): Promise<CyrusConnection> {
    this.#open++;
    try {
      return await CyrusConnection.open(this.slot, this.#imap, this.#log);
    } catch (err) {
      this.#open--;
      const e = err instanceof CheckError ? err : new CheckError('IMAP_UNREACHABLE', String(err), { slot: this.slot.name });
      this.#fail(e);
      throw e;
    }
  }

  #release(conn: CyrusConnection): void {
    if (conn.broken || this.#closed) {
      this.#open--;
      void conn.close();
    } else {
      this.#idle.push(conn);
    }
    this.#waiters.shift()?.();
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const w of this.#waiters.splice(0)) w();
    // A login still under way ends in a connection to close or a failure to record: wait for it.
    await Promise.allSettled([...this.#connecting]);
    const idle = this.#idle.splice(0);
    this.#open -= idle.length;
    await Promise.allSettled(idle.map((c) => c.close()));
  }
}
