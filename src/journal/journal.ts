/**
 * The journal on disk: one open segment taking new records, segments rotated out but still
 * finishing their in-flight records, and sealed segments waiting for retention.
 *
 * Durability: `durable` commits wait for an fdatasync that started after their COMMIT frame was
 * queued; one sync round covers every commit waiting when it starts (group commit), so N
 * concurrent deliveries cost about one fsync, not N. `interval` syncs on a timer, `off` never.
 * Any I/O error rejects the affected commits (→ 451 at the LMTP edge) and moves new records to a
 * fresh segment; it never throws out of a timer or crashes the process.
 */
import { randomFillSync } from 'node:crypto';
import { access, mkdir, readdir, stat, truncate, unlink, rename } from 'node:fs/promises';
import { constants } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Config } from '../config/index.js';
import type { Observability } from '../core/deps.js';
import { JournalUnavailableError, StorerouteError } from '../core/errors.js';
import { Entry, type EntryHost } from './entry.js';
import { FramePool } from './frame-pool.js';
import { journalMetrics, type JournalMetrics, type JournalStats } from './metrics.js';
import { openRecordBody, readSegment, type Damage, type ReadSegmentOptions } from './reader.js';
import { damageSummary, DamageMemory, logSegmentDamage } from './damage.js';
import { parseSegmentName, sealedName, SegmentWriter, type SegmentInfo } from './segment.js';
import type { SegmentHandles } from './segment-files.js';
import { readSession, type JournalSession } from './read-only.js';
import type { JournalEntry, JournalFilter, JournalMessageInfo, JournalRecord } from './types.js';
import type { Readable } from 'node:stream';
import type { Counter } from 'prom-client';

export type JournalConfig = Config['journal'];

export interface OpenJournalOptions {
  /** Clock in ms (tests of time-based retention pass their own). */
  now?: () => number;
}

export function journalUnavailable(message: string, cause?: unknown): JournalUnavailableError {
  return new JournalUnavailableError(message, { cause });
}

interface SyncWaiter { seg: SegmentWriter; resolve: () => void; reject: (e: unknown) => void }

export class FileJournal implements EntryHost {
  readonly dir: string;
  readonly #config: JournalConfig;
  readonly #log: Logger;
  readonly #metrics: JournalMetrics;
  /** The commit counter's two children, bound once (labelling per call costs a lookup per message). */
  readonly #commitsOk: Counter.Internal;
  readonly #commitsFailed: Counter.Internal;
  readonly #clock: () => number;
  readonly #rotateBytes: number;
  readonly #rotateAfterMs: number;
  #sealed: SegmentInfo[] = [];
  #active!: SegmentWriter;
  /** Rotated out, still finishing in-flight records. */
  #draining = new Set<SegmentWriter>();
  /** Draining segments whose seal (fsync, close, rename) is under way. */
  #sealing = new Map<SegmentWriter, Promise<void>>();
  #nextIndex = 1;
  #creating: Promise<void> | null = null;
  #waiters: SyncWaiter[] = [];
  #syncing = false;
  #timers: NodeJS.Timeout[] = [];
  #closed = false;
  #corruptSkipped = 0;
  readonly #damageSeen = new DamageMemory();
  #fsyncs = 0;
  #fsyncSeconds = 0;
  /** Random bytes handed out 8 at a time as record ids (one randomBytes(8) per message cost ~5 µs). */
  #idPool = Buffer.alloc(0);
  readonly frames = new FramePool();
  #idNext = 0;

  constructor(config: JournalConfig, obs: Observability, options: OpenJournalOptions = {}) {
    this.dir = config.dir;
    this.#config = config;
    this.#log = obs.logger.child({ component: 'journal' });
    this.#clock = options.now ?? Date.now;
    this.#metrics = journalMetrics(obs.metrics, () => this.stats());
    this.#commitsOk = this.#metrics.commits.labels({ outcome: 'ok' });
    this.#commitsFailed = this.#metrics.commits.labels({ outcome: 'error' });
    this.#rotateBytes = Math.min(config.segmentBytes, Math.max(64 * 1024, Math.floor(config.maxBytes / 4)));
    this.#rotateAfterMs = Math.max(1000, Math.floor(config.retentionMs / 5));
  }

  now(): number {
    return this.#clock();
  }

  recordId(): Buffer {
    if (this.#idNext + 8 > this.#idPool.length) {
      // A fresh buffer each time, never refilled in place: ids handed out earlier stay as they are.
      this.#idPool = randomFillSync(Buffer.allocUnsafeSlow(4096));
      this.#idNext = 0;
    }
    this.#idNext += 8;
    return this.#idPool.subarray(this.#idNext - 8, this.#idNext);
  }

  async open(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    for (const name of (await readdir(this.dir)).sort()) {
      const parsed = parseSegmentName(name);
      if (!parsed) continue; // the ledger, the lock, an operator's notes: not ours to judge
      this.#nextIndex = Math.max(this.#nextIndex, parsed.index + 1);
      const file = join(this.dir, name);
      if (parsed.sealed) {
        const { size } = await stat(file);
        this.#sealed.push({ index: parsed.index, file, sealed: true, bytes: size, records: parsed.records,
          firstCommit: parsed.firstCommit, lastCommit: parsed.lastCommit });
      } else {
        const info = await this.#recover(file, parsed.index);
        if (info) this.#sealed.push(info);
      }
    }
    this.#sealed.sort((a, b) => a.index - b.index);
    this.#active = await SegmentWriter.create(this.dir, this.#nextIndex++, this.now(), this.frames);
    if (this.#config.durability === 'interval') {
      this.#timers.push(setInterval(() => this.#syncAll(), this.#config.fsyncIntervalMs).unref());
    }
    const every = Math.max(100, Math.min(1000, Math.floor(this.#config.retentionMs / 10)));
    this.#timers.push(setInterval(() => { void this.maintain(); }, every).unref());
    await this.maintain();
    this.#log.info({ dir: this.dir, segments: this.#sealed.length, durability: this.#config.durability }, 'journal_opened');
  }

  /**
   * A segment left `.open` by a crash: keep its complete records, cut a torn tail, seal it. One
   * warning per segment, with its damage summed up (not one line per damaged frame).
   */
  async #recover(file: string, index: number): Promise<SegmentInfo | null> {
    let summary = { records: 0, firstCommit: 0, lastCommit: 0, goodEnd: 0, tornAt: null as number | null };
    const found: Damage[] = [];
    try {
      const onDamage = (d: Damage) => { if (this.#countDamage(d)) found.push(d); };
      for await (const _ of readSegment(file, {}, onDamage, { summary: (s) => { summary = s; } })) { /* count only */ }
      if (summary.tornAt !== null && summary.tornAt >= summary.goodEnd) await truncate(file, summary.tornAt);
      const damage = found.length > 0 ? damageSummary(found) : {};
      if (summary.records === 0) {
        await unlink(file);
        if (found.length > 0) this.#log.warn({ ...damage, file, records: 0 }, 'journal_segment_recovered');
        return null;
      }
      const target = join(this.dir, sealedName(index, summary.firstCommit, summary.lastCommit, summary.records));
      await rename(file, target);
      const { size } = await stat(target);
      this.#log.warn({ ...damage, file, records: summary.records, tornAt: summary.tornAt }, 'journal_segment_recovered');
      return { index, file: target, sealed: true, bytes: size, records: summary.records,
        firstCommit: summary.firstCommit, lastCommit: summary.lastCommit };
    } catch (err) {
      // An unreadable file never stops start-up: leave it for an operator, record nothing from it.
      this.#log.error({ file, err }, 'journal_segment_unrecoverable');
      return null;
    }
  }

  /** Counts damage the first time this process sees it; true when it was new. */
  #countDamage(d: Damage): boolean {
    if (!this.#damageSeen.first(d)) return false;
    this.#corruptSkipped += 1;
    this.#metrics.corrupt.inc({ kind: d.kind });
    return true;
  }

  /** readSegment, counting its damage once and warning once for the segment when any was new. */
  async *#readCounted(file: string, filter: JournalFilter, options: ReadSegmentOptions): AsyncGenerator<JournalRecord> {
    const found: Damage[] = [];
    try {
      yield* readSegment(file, filter, (d) => { if (this.#countDamage(d)) found.push(d); }, options);
    } finally {
      logSegmentDamage(this.#log, found);
    }
  }

  begin(info: JournalMessageInfo): JournalEntry {
    if (this.#active.failed || this.#closed) return failedEntry(journalUnavailable('journal is not writable', this.#active.failed));
    return new Entry(this, this.#active, info);
  }

  /**
   * For /readyz: null while records can be written, else why not. A segment that hit a write
   * error stays failed until a rotation replaces it, and the folder itself must still take new
   * files (a disk remounted read-only, a deleted folder), or the next rotation fails too.
   */
  async problem(): Promise<string | null> {
    if (this.#closed) return 'journal is closed';
    if (this.#active.failed) return `journal segment ${this.#active.file} failed: ${this.#active.failed.message}`;
    try {
      await access(this.dir, constants.W_OK);
    } catch (err) {
      return `journal folder ${this.dir} is not writable: ${(err as Error).message}`;
    }
    return null;
  }

  writable(seg: SegmentWriter): boolean {
    return !seg.failed && !this.#closed;
  }

  settle(seg: SegmentWriter): Promise<void> {
    if (this.#config.durability !== 'durable' && this.writable(seg)) {
      // Nothing to wait for: count it now, without a timer reading or a promise chain per message.
      this.#commitsOk.inc();
      this.#metrics.commitSeconds.observe(0);
      return RESOLVED;
    }
    const started = process.hrtime.bigint();
    const done = (outcome: 'ok' | 'error') => {
      (outcome === 'ok' ? this.#commitsOk : this.#commitsFailed).inc();
      this.#metrics.commitSeconds.observe(Number(process.hrtime.bigint() - started) / 1e9);
    };
    const p = this.writable(seg)
      ? new Promise<void>((resolve, reject) => {
        this.#waiters.push({ seg, resolve, reject });
        if (!this.#syncing) {
          this.#syncing = true;
          // setImmediate, not a microtask: commits arriving in the same I/O turn join this round.
          setImmediate(() => { void this.#syncRounds(); });
        }
      })
      : Promise.reject(seg.failed ?? new Error('journal closed'));
    return p.then(() => done('ok'), (err: unknown) => {
      done('error');
      throw err instanceof StorerouteError ? err : journalUnavailable('journal write failed', err);
    });
  }

  async #syncRounds(): Promise<void> {
    while (this.#waiters.length > 0) {
      const batch = this.#waiters;
      this.#waiters = [];
      const segs = [...new Set(batch.map((w) => w.seg))];
      const outcomes = await Promise.allSettled(segs.map((seg) => seg.sync((s) => this.#countFsync(s))));
      const failed = new Map<SegmentWriter, unknown>();
      outcomes.forEach((o, i) => { if (o.status === 'rejected') failed.set(segs[i]!, o.reason); });
      for (const w of batch) {
        if (failed.has(w.seg)) w.reject(failed.get(w.seg));
        else w.resolve();
      }
      for (const [seg, err] of failed) this.#segmentFailed(seg, err);
    }
    this.#syncing = false;
  }

  #countFsync(seconds: number): void {
    this.#fsyncs += 1;
    this.#fsyncSeconds += seconds;
    this.#metrics.fsyncs.inc();
    this.#metrics.fsyncSeconds.observe(seconds);
  }

  #syncAll(): void {
    for (const seg of [this.#active, ...this.#draining]) {
      if (seg.dirty && !seg.failed) seg.sync((s) => this.#countFsync(s)).catch((err: unknown) => this.#segmentFailed(seg, err));
    }
  }

  #segmentFailed(seg: SegmentWriter, err: unknown): void {
    this.#log.error({ file: seg.file, err }, 'journal_write_failed');
    if (seg === this.#active) this.#rotate();
  }

  released(seg: SegmentWriter): void {
    seg.inflight -= 1;
    if (seg === this.#active && seg.bytes >= this.#rotateBytes) this.#rotate();
    if (seg !== this.#active && seg.inflight === 0 && this.#draining.has(seg)) this.#finish(seg);
  }

  warnSizeMismatch(id: string, told: number, counted: number): void {
    this.#log.warn({ recordId: id, told, counted }, 'journal_size_mismatch');
  }

  /** Starts a new active segment; the old one drains its in-flight records, then seals. */
  #rotate(): void {
    if (this.#creating || this.#closed) return;
    this.#creating = SegmentWriter.create(this.dir, this.#nextIndex++, this.now(), this.frames).then((next) => {
      const old = this.#active;
      this.#active = next;
      this.#draining.add(old);
      if (old.inflight === 0) this.#finish(old);
    }, (err: unknown) => {
      this.#log.error({ dir: this.dir, err }, 'journal_segment_create_failed');
    }).finally(() => { this.#creating = null; });
  }

  #finish(seg: SegmentWriter): void {
    if (this.#sealing.has(seg)) return;
    // It stays in #draining (visible to readers) until its entry is in #sealed.
    const work = seg.failed
      ? seg.abandon().then(() => this.#failedInfo(seg))
      : seg.seal(this.#config.durability !== 'off', (s) => this.#countFsync(s)).then((file) => file && this.#sealedInfo(seg, file),
        async (err: unknown) => {
          this.#log.error({ file: seg.file, err }, 'journal_seal_failed');
          await seg.abandon(); // the fd: a failed seal may not have closed it
          return this.#failedInfo(seg);
        });
    const done = work.then((info) => {
      // One synchronous step: a reader or stats() sees the segment in exactly one list.
      if (info) this.#sealed.push(info);
      this.#sealed.sort((a, b) => a.index - b.index);
      this.#draining.delete(seg);
      this.#sealing.delete(seg);
    });
    this.#sealing.set(seg, done);
  }

  #sealedInfo(seg: SegmentWriter, file: string): SegmentInfo {
    return { index: seg.index, file, sealed: true, bytes: seg.bytes, records: seg.records, firstCommit: seg.firstCommit, lastCommit: seg.lastCommit };
  }

  /**
   * A segment that hit a write error is never written again, but what reached it before stays
   * readable, under its .open name, until retention removes it: records acknowledged (and, when
   * durable, fsync'd) before the error are exactly the ones replay exists for. Its tail may be a
   * torn frame; readers skip that as they do after a crash (the next start recovers it the same way).
   */
  #failedInfo(seg: SegmentWriter): SegmentInfo | null {
    if (seg.records === 0) return null;
    this.#log.warn({ file: seg.file, records: seg.records }, 'journal_failed_segment_kept');
    return { index: seg.index, file: seg.file, sealed: false, bytes: seg.bytes, records: seg.records,
      firstCommit: seg.firstCommit, lastCommit: seg.lastCommit };
  }

  /** Rotation by age and retention by time and size. Runs on a timer; tests may call it. */
  async maintain(): Promise<void> {
    if (this.#closed) return;
    const now = this.now();
    if (this.#active.failed || (this.#active.records > 0 && now - this.#active.createdAt >= this.#rotateAfterMs)) this.#rotate();
    if (this.#creating) await this.#creating;
    const horizon = now - this.#config.retentionMs;
    while (this.#sealed.length > 0 && this.#sealed[0]!.lastCommit < horizon) await this.#delete(this.#sealed[0]!, 'age');
    while (this.#sealed.length > 0 && this.stats().bytes > this.#config.maxBytes) await this.#delete(this.#sealed[0]!, 'size');
  }

  async #delete(seg: SegmentInfo, reason: 'age' | 'size'): Promise<void> {
    this.#sealed = this.#sealed.filter((s) => s !== seg);
    this.#damageSeen.forget(seg.index);
    try {
      await unlink(seg.file);
      this.#metrics.deletedSegments.inc({ reason });
      this.#log.info({ file: seg.file, reason, records: seg.records }, 'journal_segment_deleted');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.#log.error({ file: seg.file, err }, 'journal_segment_delete_failed');
    }
  }

  /**
   * Records matching `filter`, oldest segment first. Segments are opened by number, so one sealed
   * (renamed) or deleted while this runs is read under its new name or skipped as expired, never
   * an error; with `handles` (a read session) their fds stay open for the bodies read later.
   */
  async *read(filter: JournalFilter = {}, handles?: SegmentHandles): AsyncIterable<JournalRecord> {
    const since = filter.since?.getTime() ?? 0;
    const sealed = this.#sealed.filter((s) => s.lastCommit >= since);
    const live = [...this.#draining, this.#active].sort((a, b) => a.index - b.index);
    for (const seg of sealed) yield* this.#readCounted(seg.file, filter, { handles, expectTornTail: !seg.sealed });
    for (const seg of live) {
      const sealing = this.#sealing.get(seg);
      if (sealing) {
        await sealing; // read it complete, under its sealed name (or its .open one, had it failed)
        yield* this.#readCounted(seg.file, filter, { handles, expectTornTail: seg.failed !== null });
        continue;
      }
      const limit = seg.bytes;
      // A failed segment is read all the same: records acknowledged before its write error are on
      // disk (see #failedInfo); the frames that failed end in a torn tail or are not there at all.
      const failed = await seg.flush().then(() => false, () => true);
      // It may seal (rename) before the open below: readSegment follows it by number.
      yield* this.#readCounted(seg.file, filter, { limit, handles, expectTornTail: failed });
    }
  }

  openBody(record: JournalRecord): Readable {
    return openRecordBody(record);
  }

  session(): JournalSession {
    return readSession((filter, handles) => this.read(filter, handles));
  }

  stats(): JournalStats {
    const all: SegmentInfo[] = [...this.#sealed, ...this.#draining];
    if (this.#active) all.push(this.#active);
    let bytes = 0;
    let records = 0;
    let oldest = 0;
    for (const s of all) {
      bytes += s.bytes;
      records += s.records;
      if (s.firstCommit > 0 && (oldest === 0 || s.firstCommit < oldest)) oldest = s.firstCommit;
    }
    return { bytes, records, segments: all.length, oldestRecordAgeMs: oldest ? Math.max(0, this.now() - oldest) : 0,
      corruptFramesSkipped: this.#corruptSkipped, fsyncs: this.#fsyncs,
      fsyncSeconds: this.#fsyncSeconds };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    for (const t of this.#timers) clearInterval(t);
    if (this.#creating) await this.#creating;
    this.#closed = true;
    await Promise.allSettled([...this.#sealing.values()]);
    const segs = [this.#active, ...this.#draining];
    this.#draining.clear();
    await Promise.allSettled(segs.map(async (seg) => {
      if (seg.failed) {
        await seg.abandon();
        return;
      }
      const file = await seg.seal(this.#config.durability !== 'off', (s) => this.#countFsync(s)).catch(async (err: unknown) => {
        this.#log.error({ file: seg.file, err }, 'journal_seal_failed');
        await seg.abandon();
        return null;
      });
      if (file) this.#sealed.push(this.#sealedInfo(seg, file));
    }));
    this.#log.info({ dir: this.dir }, 'journal_closed');
  }
}

const RESOLVED = Promise.resolve();

function failedEntry(err: Error): JournalEntry {
  return {
    write: () => undefined,
    commit: () => Promise.reject(err),
    abort: () => undefined,
    failed: () => true,
  };
}
