/**
 * Reading a journal directory that another process may be writing (the CLI's local replay next to
 * a running proxy): no lock, no recovery, no retention; `.open` segments are read up to their
 * current size, and a partial frame at their end is expected, not damage.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { openRecordBody, readSegment, type Damage } from './reader.js';
import { parseSegmentName } from './segment.js';
import type { JournalFilter, JournalRecord } from './types.js';

export interface JournalReader {
  /** The journal's directory (the replay ledger lives there too). */
  readonly dir: string;
  read(filter?: JournalFilter): AsyncIterable<JournalRecord>;
  openBody(record: JournalRecord): Readable;
}

export function openJournalReader(dir: string, onDamage: (d: Damage) => void = () => undefined): JournalReader {
  return {
    dir,
    async *read(filter: JournalFilter = {}) {
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
        yield* readSegment(join(dir, s.n), filter, onDamage, { expectTornTail: !s.p.sealed });
      }
    },
    openBody: openRecordBody,
  };
}
