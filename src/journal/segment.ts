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

/** Zero-filling ahead of the writer: `step` bytes at a time, never past `limit`. */
export interface Preallocation {
  step: number;
  limit: number;
}

const ZERO_BLOCK = Buffer.alloc(1024 * 1024);

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
 * The writing side of a segment. Appends are queued in memory and written by one serialised
 * chain of operations, so every write lands at a known offset and an fsync queued after a write
 * covers it. An I/O error poisons the segment: every later operation rejects with it.
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
  #writeQueued = false;
  #written = 0;
  #synced = 0;
  #chain: Promise<void> = Promise.resolve();
  readonly #prealloc: Preallocation | null;
  /** Zero-filled and fdatasync'd up to here: writes below it change no file metadata. */
  #allocated = 0;
  /** An extension in flight, zero-filling from #extendFrom. */
  #extending: Promise<void> | null = null;
  #extendFrom = 0;
  #finished = false;

  private constructor(dir: string, index: number, fh: FileHandle, createdAt: number, prealloc: Preallocation | null) {
    this.dir = dir;
    this.index = index;
    this.file = join(dir, openName(index));
    this.#fh = fh;
    this.createdAt = createdAt;
    this.#prealloc = prealloc;
  }

  /** With `prealloc`, the first step is zero-filled before the segment takes records. */
  static async create(dir: string, index: number, now: number, prealloc: Preallocation | null = null): Promise<SegmentWriter> {
    const fh = await open(join(dir, openName(index)), 'wx');
    const seg = new SegmentWriter(dir, index, fh, now, prealloc);
    if (prealloc) {
      seg.#extend();
      await seg.#extending;
    }
    return seg;
  }

  /** Queues bytes; returns the offset just past them. Never blocks. */
  append(frame: Buffer): number {
    this.#pending.push(frame);
    this.bytes += frame.length;
    if (!this.#writeQueued) {
      this.#writeQueued = true;
      // The outcome reaches callers through flush()/sync(); a failure poisons the segment.
      this.#run(() => this.#writePending()).catch(() => undefined);
    }
    if (this.#prealloc && !this.#extending && this.bytes + this.#prealloc.step / 2 > this.#allocated) this.#extend();
    return this.bytes;
  }

  /**
   * Zero-fills the next step past everything queued and fdatasyncs it, off the write chain: the
   * size change and block allocation are committed once per step instead of by every group-commit
   * fsync (ext4 makes fdatasync of an appended file commit its metadata; of an overwrite, not).
   * A data write reaching into the step waits for it (#writePending), so zeros never land on data.
   * A failure only ends preallocation for this segment: appends work without it.
   */
  #extend(): void {
    const p = this.#prealloc;
    if (!p || this.#finished) return;
    const from = Math.max(this.#allocated, this.bytes);
    const to = Math.min(from + p.step, p.limit);
    if (to <= from) return;
    this.#extendFrom = from;
    this.#extending = (async () => {
      // Block by block, each made durable at once: a group-commit fdatasync running meanwhile
      // flushes every dirty page of the file, so it must never find megabytes of zeros waiting.
      for (let off = from; off < to; off += ZERO_BLOCK.length) {
        const n = Math.min(ZERO_BLOCK.length, to - off);
        await this.#fh.write(ZERO_BLOCK, 0, n, off);
        await this.#fh.datasync();
        this.#allocated = off + n;
      }
    })().catch(() => {
      this.#finished = true; // no more preallocation here; the writes themselves report real trouble
    }).finally(() => { this.#extending = null; });
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
  sync(onSynced: (seconds: number) => void, force = false): Promise<void> {
    const target = this.bytes;
    return this.#run(async () => {
      if (this.#synced >= target && !force) return;
      const upTo = this.#written;
      const started = process.hrtime.bigint();
      await this.#fh.datasync();
      this.#synced = Math.max(this.#synced, upTo);
      onSynced(Number(process.hrtime.bigint() - started) / 1e9);
    });
  }

  /** Resolves once everything queued before the call is written (no fsync). */
  flush(): Promise<void> {
    return this.#run(async () => undefined);
  }

  /**
   * Writes what is queued, cuts the preallocated space off, optionally fsyncs, closes and renames
   * to the sealed name: a sealed segment is exactly its frames.
   */
  async seal(fsync: boolean, onSynced: (seconds: number) => void): Promise<string | null> {
    this.#finished = true;
    await this.#extending;
    await this.flush();
    if (this.#prealloc) await this.#run(() => this.#fh.truncate(this.#written));
    if (fsync) await this.sync(onSynced, true);
    await this.#run(() => this.#fh.close());
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
    this.#finished = true;
    await this.#extending;
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
    let bufs = this.#pending;
    this.#pending = [];
    const extending = this.#extending;
    if (extending && this.#written + bufs.reduce((n, b) => n + b.length, 0) > this.#extendFrom) await extending;
    while (bufs.length > 0) {
      const total = bufs.reduce((n, b) => n + b.length, 0);
      const { bytesWritten } = await this.#fh.writev(bufs, this.#written);
      this.#written += bytesWritten;
      if (bytesWritten >= total) break;
      bufs = [Buffer.concat(bufs).subarray(bytesWritten)]; // short write: retry the rest
    }
  }
}
