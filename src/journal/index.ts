/**
 * The replay journal's entry point: storage only. `openJournal` gives the LMTP DATA path its
 * JournalSink and replay (src/replay/, a floor above) its reader; `openJournalReader` reads a
 * journal another process is writing. Choosing what to re-deliver and delivering it live in
 * src/replay/; this folder imports nothing above core/ and config/.
 */
import { mkdir } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import type { Observability } from '../core/deps.js';
import { FileJournal, journalUnavailable, type JournalConfig, type OpenJournalOptions } from './journal.js';
import { lockJournalDir } from './lock.js';
import type { JournalStats } from './metrics.js';
import type { JournalEntry, JournalFilter, JournalMessageInfo, JournalRecord, JournalSink } from './types.js';
import { openRecordBody } from './reader.js';

export type { JournalEntry, JournalFilter, JournalMessageInfo, JournalRecipient, JournalRecord, JournalSink } from './types.js';
export type { JournalStats } from './metrics.js';
export type { JournalConfig, OpenJournalOptions } from './journal.js';
export { openJournalReader, type JournalReader, type JournalSession } from './read-only.js';
export { JournalRecordGoneError } from './segment-files.js';
// For replay: it keeps its lock and ledger in the journal's directory and fails like the journal.
export { journalUnavailable } from './journal.js';
export { lockJournalDir, REPLAY_LOCK_FILE } from './lock.js';
import { readSession, type JournalReader } from './read-only.js';

export interface Journal extends JournalSink, JournalReader {
  /** Committed records matching the filter, oldest segment first. */
  read(filter?: JournalFilter): AsyncIterable<JournalRecord>;
  /** The record's body bytes, each chunk verified against its checksum. */
  openBody(record: JournalRecord): Readable;
  stats(): JournalStats;
  /** null while new records can be written; otherwise why not (for /readyz). */
  problem(): Promise<string | null>;
  /** Runs rotation and retention now (they also run on a timer). */
  maintain(): Promise<void>;
  /** Seals what is open (fsync unless durability is off) and releases the directory lock. */
  close(): Promise<void>;
  readonly enabled: boolean;
}

/**
 * Opens (creating if needed) the journal in `config.dir`: recovers segments left open by a crash
 * (torn tails cut, damaged frames skipped and counted), takes the directory lock, starts the
 * retention and fsync timers. Throws a JOURNAL_UNAVAILABLE StorerouteError when the directory
 * cannot be used (in use by another process, not writable).
 * With `enabled: false` it returns a journal that records nothing.
 */
export async function openJournal(config: JournalConfig, obs: Observability, options: OpenJournalOptions = {}): Promise<Journal> {
  if (!config.enabled) return disabledJournal(config.dir);
  const journal = new FileJournal(config, obs, options);
  let release: (() => Promise<void>) | null = null;
  try {
    await mkdir(config.dir, { recursive: true });
    release = await lockJournalDir(config.dir);
    await journal.open();
  } catch (err) {
    await release?.();
    throw journalUnavailable(`cannot open journal in ${config.dir}: ${(err as Error).message}`, err);
  }
  const unlock = release;
  return {
    enabled: true,
    dir: config.dir,
    begin: (info: JournalMessageInfo): JournalEntry => journal.begin(info),
    read: (filter?: JournalFilter) => journal.read(filter),
    openBody: (record: JournalRecord) => journal.openBody(record),
    session: () => journal.session(),
    stats: () => journal.stats(),
    problem: () => journal.problem(),
    maintain: () => journal.maintain(),
    close: async () => {
      await journal.close();
      await unlock();
    },
  };
}

// eslint-disable-next-line require-yield -- an empty journal yields nothing
async function* nothing(): AsyncGenerator<JournalRecord> { return; }

function disabledJournal(dir: string): Journal {
  const entry: JournalEntry = { write: () => undefined, commit: () => Promise.resolve(), abort: () => undefined };
  return {
    enabled: false,
    dir,
    begin: () => entry,
    read: nothing,
    openBody: openRecordBody,
    session: () => readSession(nothing),
    stats: () => ({ bytes: 0, records: 0, segments: 0, oldestRecordAgeMs: 0, corruptFramesSkipped: 0, fsyncs: 0, fsyncSeconds: 0 }),
    problem: () => Promise.resolve(null),
    maintain: () => Promise.resolve(),
    close: () => Promise.resolve(),
  };
}
