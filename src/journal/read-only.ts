/**
 * Reading a journal directory that another process may be writing (the CLI's local replay next to
 * a running proxy): no lock, no recovery, no retention; `.open` segments are read up to their
 * current size, and a partial frame at their end is expected, not damage. Segments are opened by
 * number, so one the writer seals (renames) between our readdir and open is still read.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { openRecordBody, openSessionBody, readSegment, type Damage } from './reader.js';
import { parseSegmentName } from './segment.js';
import { SegmentHandles } from './segment-files.js';
import { DamageMemory } from './damage.js';
import type { JournalFilter, JournalRecord } from './types.js';

/**
 * One consistent pass over a journal (a replay): every segment it read records from stays open
 * until close(), so the bodies stay readable even if the writer seals the segment or retention
 * deletes it meanwhile.
 */
export interface JournalSession {
  read(filter?: JournalFilter): AsyncIterable<JournalRecord>;
  /** Resolves once the body's segment is open; rejects (code JOURNAL_RECORD_GONE) when it is gone. */
  openBody(record: JournalRecord): Promise<Readable>;
  close(): Promise<void>;
}

export interface JournalReader {
  /** The journal's directory (the replay ledger lives there too). */
  readonly dir: string;
  read(filter?: JournalFilter): AsyncIterable<JournalRecord>;
  openBody(record: JournalRecord): Readable;
  session(): JournalSession;
}

/** A session over any reader that can read through a set of held segment handles. */
export function readSession(read: (filter: JournalFilter, handles: SegmentHandles) => AsyncIterable<JournalRecord>): JournalSession {
  const handles = new SegmentHandles();
  return {
    read: (filter: JournalFilter = {}) => read(filter, handles),
    openBody: (record) => openSessionBody(record, handles),
    close: () => handles.close(),
  };
}

/**
 * `onDamage` hears of each damaged frame once for the life of this reader, however many passes
 * (replays) cross it.
 */
export function openJournalReader(dir: string, onNewDamage: (d: Damage) => void = () => undefined): JournalReader {
  const seen = new DamageMemory();
  const onDamage = (d: Damage) => { if (seen.first(d)) onNewDamage(d); };
  async function* read(filter: JournalFilter = {}, handles?: SegmentHandles): AsyncIterable<JournalRecord> {
    let names: string[];
    try {
      names = await readdir(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    const since = filter.since?.getTime() ?? 0;
    const segs = names.map((n) => ({ n, p: parseSegmentName(n) }))
      .filter((s): s is { n: string; p: NonNullable<typeof s.p> } => s.p !== null)
      .filter((s) => !s.p.sealed || s.p.lastCommit >= since)
      .sort((a, b) => a.p.index - b.p.index);
    for (const s of segs) {
      yield* readSegment(join(dir, s.n), filter, onDamage, { expectTornTail: !s.p.sealed, handles });
    }
  }
  return {
    dir,
    read: (filter?: JournalFilter) => read(filter),
    openBody: openRecordBody,
    session: () => readSession(read),
  };
}
