/**
 * One segment file. Names encode state so a restart rebuilds the journal from readdir alone:
 *
 *   seg-00000042.open                                 being written (or left by a crash)
 *   seg-00000042-<firstCommitMs>-<lastCommitMs>-<records>.seg   sealed, never written again
 *
 * Retention reads the times from sealed names, so start-up does not scan sealed data.
 * A record is written entirely into the segment it began in (its later frames follow it there
 * even after the journal rotated), so deleting a whole sealed segment never cuts a record in two.
 */
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { FramePool } from './frame-pool.js';

const OPEN_RE = /^seg-(\d{8,})\.open$/;
const SEALED_RE = /^seg-(\d{8,})-(\d+)-(\d+)-(\d+)\.seg$/;

export interface SegmentName {
  index: number;
  sealed: boolean;
  firstCommit: number;
  lastCommit: number;
  records: number;
}

export function parseSegmentName(name: string): SegmentName | null {
  const s = SEALED_RE.exec(name);
  if (s) {
    return { index: Number(s[1]), sealed: true, firstCommit: Number(s[2]), lastCommit: Number(s[3]), records: Number(s[4]) };
  }
  const o = OPEN_RE.exec(name);
  if (o) return { index: Number(o[1]), sealed: false, firstCommit: 0, lastCommit: 0, records: 0 };
  return null;
}

const pad = (n: number) => String(n).padStart(8, '0');
export const openName = (index: number) => `seg-${pad(index)}.open`;
export const sealedName = (index: number, firstCommit: number, lastCommit: number, records: number) =>
  `seg-${pad(index)}-${firstCommit}-${lastCommit}-${records}.seg`;

/** What the journal knows of every segment on disk, written or sealed. */
export interface SegmentInfo {
  index: number;
  file: string;
  sealed: boolean;
  bytes: number;
  records: number;
  /** receivedAt-independent: commit times, in ms. 0 when no record yet. */
  firstCommit: number;
  lastCommit: number;
}

/**
 * Appends wait in memory until this much is pending (or WRITE_BATCH_BUFFERS pooled frame
 * buffers, or WRITE_DELAY_MS passed, or a sync/flush/seal needs them): each write is a hand-off
 * to libuv's threadpool and back, measured at ~45-65 µs of CPU per write on this 2-core VM beside
 * ~36 µs for the 100 KB copy itself, so one write per record cost the LMTP proxy more than the
 * bytes did. `durable` loses nothing by it: its fsync round writes what is pending first.
 */
const WRITE_BATCH_BYTES = 512 * 1024;
const WRITE_BATCH_BUFFERS = 24;
const WRITE_DELAY_MS = 5;

/**
 * The writing side of a segment. Appends are queued in memory and written in batches by one
 * serialised chain of operations, so every write lands at a known offset and an fsync writes
 * what is pending before it syncs. An I/O error poisons the segment: every later operation
 * rejects with it.
 */
export class SegmentWriter implements SegmentInfo {
  readonly index: number;
  file: string;
  readonly sealed = false;
  readonly dir: string;
  bytes = 0; // queued (not necessarily written) length
  records = 0;
  firstCommit = 0;
  lastCommit = 0;
  /** Records begun here and not yet committed or aborted. */
  inflight = 0;
  /** No new records start here; sealed once inflight reaches 0. */
  rotated = false;
  readonly createdAt: number;
  failed: Error | null = null;

  #fh: FileHandle;
  #pending: Buffer[] = [];
  /** Pooled buffers behind #pending, handed back to the pool once written. */
  #pendingPooled: Buffer[] = [];
  readonly #pool: FramePool | null;
  #pendingBytes = 0;
  #writeQueued = false;
  #writeTimer: NodeJS.Timeout | null = null;
  /** Closed by seal() or abandon(): appends are dropped (see append). */
  #closed = false;
  #written = 0;
  #synced = 0;
  #chain: Promise<void> = Promise.resolve();

  private constructor(dir: string, index: number, fh: FileHandle, createdAt: number, pool: FramePool | null) {
    this.dir = dir;
    this.#pool = pool;
    this.index = index;
    this.file = join(dir, openName(index));
    this.#fh = fh;
    this.createdAt = createdAt;
  }

  static async create(dir: string, index: number, now: number, pool: FramePool | null = null): Promise<SegmentWriter> {
    const fh = await open(join(dir, openName(index)), 'wx');
    return new SegmentWriter(dir, index, fh, now, pool);
  }

  /**
   * Queues frames' buffers (`bytes` in all) and returns the offset just past them. Never
   * blocks. The buffers are written as they are, by reference: nobody may change them afterwards.
   * `pooled`: the pool buffers they live in, given back to the pool once the write is over.
   */
  append(parts: readonly Buffer[], bytes: number, pooled?: readonly Buffer[]): number {
    if (this.failed || this.#closed) {
      // Nothing will be written here again (a record still streaming into a segment that failed,
      // or that close() sealed): the commit rejects, so keep neither the bytes nor a timer.
      if (pooled && this.#pool) for (const b of pooled) this.#pool.give(b);
      this.bytes += bytes;
      return this.bytes;
    }
    for (const part of parts) this.#pending.push(part);
    if (pooled) for (const b of pooled) this.#pendingPooled.push(b);
    this.bytes += bytes;
    this.#pendingBytes += bytes;
    if (this.#pendingBytes >= WRITE_BATCH_BYTES || this.#pendingPooled.length >= WRITE_BATCH_BUFFERS) this.#queueWrite();
    else this.#writeTimer ??= setTimeout(() => this.#queueWrite(), WRITE_DELAY_MS).unref();
    return this.bytes;
  }

  /** Puts a write of everything pending on the chain (unless one is there already). */
  #queueWrite(): void {
    if (this.#writeTimer) {
      clearTimeout(this.#writeTimer);
      this.#writeTimer = null;
    }
    if (this.#writeQueued || this.#pending.length === 0) return;
    this.#writeQueued = true;
    // The outcome reaches callers through flush()/sync(); a failure poisons the segment.
    this.#run(() => this.#writePending()).catch(() => undefined);
  }

  noteCommit(at: number): void {
    this.records += 1;
    if (this.firstCommit === 0) this.firstCommit = at;
    this.lastCommit = Math.max(this.lastCommit, at);
  }

  /** True when bytes were queued since the last fsync. */
  get dirty(): boolean {
    return this.bytes > this.#synced;
  }

  /** Resolves once everything queued before the call is written and fdatasync'd. */
  sync(onSynced: (seconds: number) => void): Promise<void> {
    const target = this.bytes;
    return this.#run(async () => {
      if (this.#synced >= target) return;
      await this.#writePending();
      const upTo = this.#written;
      const started = process.hrtime.bigint();
      await this.#fh.datasync();
      this.#synced = Math.max(this.#synced, upTo);
      onSynced(Number(process.hrtime.bigint() - started) / 1e9);
    });
  }

  /** Resolves once everything queued before the call is written (no fsync). */
  flush(): Promise<void> {
    return this.#run(() => this.#writePending());
  }

  /** Writes what is queued, optionally fsyncs, closes and renames to the sealed name. */
  async seal(fsync: boolean, onSynced: (seconds: number) => void): Promise<string | null> {
    if (fsync) await this.sync(onSynced);
    else await this.flush();
    await this.#run(async () => {
      this.#closed = true;
      await this.#fh.close();
    });
    if (this.records === 0) {
      await unlink(this.file);
      return null;
    }
    const name = sealedName(this.index, this.firstCommit, this.lastCommit, this.records);
    const target = join(this.dir, name);
    await rename(this.file, target);
    this.file = target;
    return target;
  }

  /** Closes without sealing after a failure (the .open file is recovered at the next start). */
  async abandon(): Promise<void> {
    this.#closed = true;
    if (this.#writeTimer) clearTimeout(this.#writeTimer);
    this.#writeTimer = null;
    await this.#fh.close().catch(() => undefined);
  }

  #run(op: () => Promise<void>): Promise<void> {
    const p = this.#chain.then(() => {
      if (this.failed) throw this.failed;
      return op();
    });
    // The chain itself never rejects; each caller gets its own outcome, and the first failure
    // poisons the segment so that nothing is ever reported durable after a lost write.
    this.#chain = p.catch((err: unknown) => {
      this.failed ??= err instanceof Error ? err : new Error(String(err));
    });
    return p;
  }

  async #writePending(): Promise<void> {
    this.#writeQueued = false;
    if (this.#writeTimer) {
      clearTimeout(this.#writeTimer);
      this.#writeTimer = null;
    }
    if (this.#pending.length === 0) return;
    let bufs = this.#pending;
    const pooled = this.#pendingPooled;
    this.#pending = [];
    this.#pendingPooled = [];
    this.#pendingBytes = 0;
    let total = 0;
    for (const b of bufs) total += b.length;
    try {
      while (total > 0) {
        const { bytesWritten } = await this.#fh.writev(bufs, this.#written);
        if (bytesWritten === 0) throw new Error(`journal segment ${this.file}: write made no progress`);
        this.#written += bytesWritten;
        total -= bytesWritten;
        if (total > 0) bufs = skipBytes(bufs, bytesWritten); // short write: retry the rest
      }
    } finally {
      // Written or failed, the bytes are not needed again (a failed segment is never retried).
      if (this.#pool) for (const b of pooled) this.#pool.give(b);
    }
  }
}

/** The buffers that remain after the first `n` bytes of `bufs` (no copying). */
function skipBytes(bufs: Buffer[], n: number): Buffer[] {
  let i = 0;
  while (i < bufs.length && n >= bufs[i]!.length) n -= bufs[i++]!.length;
  const rest = bufs.slice(i);
  if (n > 0 && rest.length > 0) rest[0] = rest[0]!.subarray(n);
  return rest;
}
