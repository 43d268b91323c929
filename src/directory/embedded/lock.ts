/**
 * The cross-process lock of an embedded directory file: `storeroute serve` and a one-shot CLI
 * command (`store failover`) may mutate the same file at once, and each must apply its rules to the
 * state the other left. The lock is a file beside the directory file, created with O_EXCL (`wx`),
 * holding who took it: { pid, host, bootId, at, token }.
 *
 * A holder that died (kill -9, crash, reboot) leaves its lock behind. A lock is stale when, on this
 * host, its pid is not running, or its boot id is not this boot's (pids restart after a reboot, so
 * a live pid proves nothing then). A lock file that cannot be parsed is a holder killed between
 * create and write: stale once older than UNREADABLE_STALE_MS. Breaking a stale lock is itself
 * guarded by a second O_EXCL file, so two waiters that both judge a lock stale cannot both remove
 * it (the second would remove the first one's fresh lock).
 *
 * Waiting is bounded: past `waitMs` the caller gets DirectoryUnavailableError (transient), naming
 * the holder, instead of hanging a CLI or an admin call forever.
 */
import { open, readFile, stat, unlink } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { DirectoryUnavailableError } from '../../core/errors.js';

export interface LockOwner {
  pid: number;
  host: string;
  bootId: string;
  /** ISO-8601 time the lock was taken. */
  at: string;
  token: string;
}

/** A lock file nobody could write into (holder killed between create and write) is stale after this. */
const UNREADABLE_STALE_MS = 2_000;
/** A break guard left by a breaker that died mid-break is stale after this. */
const GUARD_STALE_MS = 5_000;

function readBootId(): string {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return ''; // not Linux: fall back to pid liveness alone
  }
}

/** Is `pid` a running process? EPERM means it runs under another user: alive. */
export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function parseOwner(text: string): LockOwner | null {
  try {
    const o = JSON.parse(text) as Partial<LockOwner>;
    return typeof o.pid === 'number' && typeof o.token === 'string' ? o as LockOwner : null;
  } catch {
    return null;
  }
}

async function createExclusive(path: string, text: string): Promise<boolean> {
  let fh;
  try {
    fh = await open(path, 'wx', 0o640);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
  try {
    await fh.writeFile(text, 'utf8');
  } finally {
    await fh.close();
  }
  return true;
}

async function ageMs(path: string): Promise<number | null> {
  try {
    return Date.now() - (await stat(path)).mtimeMs;
  } catch {
    return null;
  }
}

export class FileLock {
  readonly path: string;
  readonly #host = hostname();
  readonly #bootId = readBootId();

  constructor(file: string) {
    this.path = `${file}.lock`;
  }

  /** Why the current lock (as read) may be broken, or null if its holder may still be alive. */
  #staleReason(owner: LockOwner | null, age: number | null): string | null {
    if (!owner) return age !== null && age > UNREADABLE_STALE_MS ? 'unreadable' : null;
    if (owner.host !== this.#host) return null; // another machine's process: we cannot tell
    if (this.#bootId && owner.bootId && owner.bootId !== this.#bootId) return 'previous boot';
    if (owner.pid !== process.pid && !pidAlive(owner.pid)) return 'holder not running';
    return null;
  }

  /** Removes the lock if it is still the stale one we saw (`seen`), under the break guard. */
  async #breakStale(seen: string): Promise<boolean> {
    const guard = `${this.path}.break`;
    if (!await createExclusive(guard, String(process.pid))) {
      const age = await ageMs(guard);
      if (age !== null && age > GUARD_STALE_MS) await unlink(guard).catch(() => undefined);
      return false;
    }
    try {
      const now = await readFile(this.path, 'utf8').catch(() => null);
      if (now !== seen) return false; // taken or released meanwhile: look again
      await unlink(this.path);
      return true;
    } finally {
      await unlink(guard).catch(() => undefined);
    }
  }

  /**
   * Takes the lock, waiting at most `waitMs`; returns a release function. `onBroken` hears about
   * every stale lock removed (for a log line).
   */
  async acquire(waitMs: number, onBroken?: (owner: LockOwner | null, why: string) => void): Promise<() => Promise<void>> {
    const deadline = Date.now() + waitMs;
    const me: LockOwner = { pid: process.pid, host: this.#host, bootId: this.#bootId, at: '', token: randomBytes(8).toString('hex') };
    let delay = 2;
    let last: LockOwner | null = null;
    for (;;) {
      me.at = new Date().toISOString();
      let created: boolean;
      try {
        created = await createExclusive(this.path, JSON.stringify(me));
      } catch (err) {
        throw new DirectoryUnavailableError(`cannot create lock file ${this.path}: ${(err as Error).message}`, { cause: err });
      }
      if (created) return () => this.#release(me.token);
      const text = await readFile(this.path, 'utf8').catch(() => null);
      if (text !== null) {
        last = parseOwner(text);
        const why = this.#staleReason(last, await ageMs(this.path));
        if (why && await this.#breakStale(text)) {
          onBroken?.(last, why);
          continue;
        }
      }
      if (Date.now() >= deadline) {
        const holder = last ? `pid ${last.pid} on ${last.host} since ${last.at}` : 'an unknown process';
        throw new DirectoryUnavailableError(`directory file is locked by ${holder} (${this.path}); waited ${waitMs} ms`);
      }
      await new Promise((r) => setTimeout(r, Math.min(delay, Math.max(1, deadline - Date.now()))));
      delay = Math.min(delay * 2, 25);
    }
  }

  async #release(token: string): Promise<void> {
    // Only remove our own lock: if it was (wrongly) broken and re-taken, the new holder keeps it.
    const text = await readFile(this.path, 'utf8').catch(() => null);
    if (text !== null && parseOwner(text)?.token === token) await unlink(this.path).catch(() => undefined);
  }
}
