/**
 * Turning segment frames back into records, and a record's body back into a stream.
 * Damage is reported through `onDamage` and skipped: one bad frame costs its own record at most.
 */
import type { FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { FRAME_BODY, readPayload, scanFrames } from './frame.js';
import { JournalRecordGoneError, openSegment, type OpenedSegment, type SegmentHandles } from './segment-files.js';
import type { JournalFilter, JournalRecipient, JournalRecord } from './types.js';

export interface Damage {
  file: string;
  kind: 'corrupt' | 'torn' | 'incomplete';
  offset: number;
  bytes: number;
  reason: string;
  recordId?: string;
}

/** The COMMIT payload, as written by the writer (version 1). */
export interface CommitMeta {
  v: 1;
  id: string;
  receivedAt: number;
  committedAt: number;
  mailFrom: string;
  queueId: string;
  recipients: JournalRecipient[];
  size: number;
  sha256: string;
  messageId: string | null;
  /** Number of BODY frames. */
  chunks: number;
}

export interface SegmentScanResult {
  records: number;
  firstCommit: number;
  lastCommit: number;
  /** Offset just past the last good frame (where a torn tail starts). */
  goodEnd: number;
  tornAt: number | null;
}

export function matchesFilter(meta: CommitMeta, filter: JournalFilter): boolean {
  if (filter.since && meta.receivedAt < filter.since.getTime()) return false;
  if (filter.until && meta.receivedAt > filter.until.getTime()) return false;
  if (filter.store || filter.user) {
    return meta.recipients.some((r) => (!filter.store || r.store === filter.store) && (!filter.user || r.user === filter.user));
  }
  return true;
}

function parseMeta(payload: Buffer): CommitMeta | null {
  try {
    const m = JSON.parse(payload.toString('utf8')) as CommitMeta;
    if (m.v !== 1 || typeof m.id !== 'string' || !Array.isArray(m.recipients)) return null;
    return m;
  } catch {
    return null; // checksummed yet unparsable: treated as damage by the caller
  }
}

export interface ReadSegmentOptions {
  /** Bounds the scan of a segment still being written. */
  limit?: number;
  /** Receives totals when the scan ends. */
  summary?: (s: SegmentScanResult) => void;
  /** A partial frame at the end is a write in progress (an `.open` segment read lock-free), not damage. */
  expectTornTail?: boolean;
  /** A read session: the segment's fd is taken from (and left open in) it, for the bodies read later. */
  handles?: SegmentHandles;
}

/**
 * Reads every complete record of one segment, in commit order. The segment is opened by number:
 * sealed (renamed) since `file` was listed, it is read under its new name; deleted by retention
 * before we got to it, it has nothing to read (not damage). Records carry the name it was read under.
 */
export async function* readSegment(
  listed: string,
  filter: JournalFilter,
  onDamage: (d: Damage) => void,
  options: ReadSegmentOptions = {},
): AsyncGenerator<JournalRecord> {
  const seg: OpenedSegment | null = options.handles ? await options.handles.get(listed) : await openSegment(listed);
  if (!seg) return;
  const { fh, file } = seg;
  let yielded = 0;
  const bodies = new Map<string, Array<[number, number] | undefined>>();
  const result: SegmentScanResult = { records: 0, firstCommit: 0, lastCommit: 0, goodEnd: 0, tornAt: null };
  try {
    for await (const ev of scanFrames(fh, options.limit)) {
      if (ev.kind === 'torn') {
        result.tornAt = ev.offset;
        if (!options.expectTornTail) onDamage({ file, kind: 'torn', offset: ev.offset, bytes: ev.bytes, reason: 'file ends inside a frame' });
        continue;
      }
      if (ev.kind === 'corrupt') {
        onDamage({ file, kind: 'corrupt', offset: ev.offset, bytes: ev.bytes, reason: ev.reason });
        continue;
      }
      const f = ev.frame;
      result.goodEnd = f.payloadOffset + f.length + 4;
      if (f.type === FRAME_BODY) {
        let chunks = bodies.get(f.recordId);
        if (!chunks) bodies.set(f.recordId, (chunks = []));
        chunks[f.seq] = [f.payloadOffset, f.length];
        continue;
      }
      const chunks = bodies.get(f.recordId) ?? [];
      bodies.delete(f.recordId);
      const meta = f.payload ? parseMeta(f.payload) : null;
      if (!meta) {
        onDamage({ file, kind: 'corrupt', offset: f.payloadOffset, bytes: f.length, reason: 'unreadable commit meta', recordId: f.recordId });
        continue;
      }
      const complete = chunks.length === meta.chunks && chunks.every((c) => c !== undefined)
        && chunks.reduce((n, c) => n + (c?.[1] ?? 0), 0) === meta.size;
      if (!complete) {
        onDamage({ file, kind: 'incomplete', offset: f.payloadOffset, bytes: 0, reason: 'body frames missing or damaged', recordId: meta.id });
        continue;
      }
      result.records += 1;
      if (result.firstCommit === 0) result.firstCommit = meta.committedAt;
      result.lastCommit = Math.max(result.lastCommit, meta.committedAt);
      if (!matchesFilter(meta, filter)) continue;
      yielded += 1;
      yield {
        id: meta.id,
        receivedAt: new Date(meta.receivedAt),
        committedAt: new Date(meta.committedAt),
        mailFrom: meta.mailFrom,
        queueId: meta.queueId,
        recipients: meta.recipients,
        size: meta.size,
        sha256: meta.sha256,
        messageId: meta.messageId,
        location: { file, chunks: chunks as Array<[number, number]> },
      };
    }
    options.summary?.(result);
  } finally {
    // A session keeps the fd only where it found records it may be asked for.
    if (!options.handles) await fh.close();
    else if (yielded === 0) await options.handles.release(listed);
  }
}

function gone(record: JournalRecord): JournalRecordGoneError {
  return new JournalRecordGoneError(`journal record ${record.id} is gone: its segment ${record.location.file} was removed by retention`);
}

function bodyStream(record: JournalRecord, fh: FileHandle, closeAfter: boolean): Readable {
  async function* body(): AsyncGenerator<Buffer> {
    try {
      for (const [offset, length] of record.location.chunks) yield await readPayload(fh, offset, length);
    } finally {
      if (closeAfter) await fh.close();
    }
  }
  return Readable.from(body(), { objectMode: false });
}

/**
 * The body of a record, chunk by chunk, each verified against its checksum as it is read. Its
 * segment is opened by number (it may have been sealed since the record was read); a segment
 * removed by retention meanwhile makes the stream fail with JOURNAL_RECORD_GONE.
 */
export function openRecordBody(record: JournalRecord): Readable {
  async function* body(): AsyncGenerator<Buffer> {
    const seg = await openSegment(record.location.file);
    if (!seg) throw gone(record);
    yield* bodyStream(record, seg.fh, true);
  }
  return Readable.from(body(), { objectMode: false });
}

/**
 * The body through a read session: resolves once the segment is open (so a caller can refuse
 * before it starts a delivery), rejects with JOURNAL_RECORD_GONE when nothing holds it any more.
 */
export async function openSessionBody(record: JournalRecord, handles: SegmentHandles): Promise<Readable> {
  const seg = await handles.get(record.location.file);
  if (!seg) throw gone(record);
  return bodyStream(record, seg.fh, false);
}
