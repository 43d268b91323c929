/**
 * The replay ledger: one JSON line per recipient a replay handled (who, when, which record and
 * recipient, what happened), next to the journal. A later replay skips what a previous one
 * settled (delivered, already present, refused) unless asked `again`; failures stay retryable.
 * A torn last line (crash mid-append) is ignored.
 */
import { appendFile, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export const LEDGER_FILE = 'replay-ledger.jsonl';
/** Ledger entries are kept a week: far longer than any journal retention. */
const KEEP_MS = 7 * 24 * 3_600_000;

export type ReplayOutcome = 'delivered' | 'alreadyPresent' | 'refused' | 'failed';

export interface LedgerEntry {
  at: string;
  actor: string;
  store: string;
  recordId: string;
  address: string;
  toSlot: string;
  outcome: ReplayOutcome;
  detail?: string;
}

const SETTLED: ReadonlySet<ReplayOutcome> = new Set(['delivered', 'alreadyPresent', 'refused']);

export const ledgerKey = (recordId: string, address: string) => `${recordId}\t${address.toLowerCase()}`;

export class ReplayLedger {
  readonly file: string;
  readonly #settled = new Map<string, LedgerEntry>();

  private constructor(dir: string) {
    this.file = join(dir, LEDGER_FILE);
  }

  static async load(dir: string): Promise<ReplayLedger> {
    const ledger = new ReplayLedger(dir);
    let text = '';
    try {
      text = await readFile(ledger.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const horizon = Date.now() - KEEP_MS;
    const kept: string[] = [];
    let dropped = 0;
    for (const line of text.split('\n')) {
      if (!line) continue;
      try {
        const e = JSON.parse(line) as LedgerEntry;
        if (Date.parse(e.at) < horizon) { dropped += 1; continue; }
        kept.push(line);
        if (SETTLED.has(e.outcome)) ledger.#settled.set(ledgerKey(e.recordId, e.address), e);
      } catch {
        dropped += 1; // a torn line from a crash mid-append
      }
    }
    // Entries older than any journal retention refer to records long gone: rewrite without them
    // (atomically) once there are enough to matter, so the ledger does not grow forever.
    if (dropped >= 1000) {
      const tmp = `${ledger.file}.tmp`;
      await writeFile(tmp, kept.map((l) => l + '\n').join(''));
      await rename(tmp, ledger.file);
    }
    return ledger;
  }

  /** The earlier replay that settled this recipient of this record, if any. */
  settled(recordId: string, address: string): LedgerEntry | undefined {
    return this.#settled.get(ledgerKey(recordId, address));
  }

  async append(entries: LedgerEntry[]): Promise<void> {
    if (entries.length === 0) return;
    await appendFile(this.file, entries.map((e) => JSON.stringify(e) + '\n').join(''));
    for (const e of entries) if (SETTLED.has(e.outcome)) this.#settled.set(ledgerKey(e.recordId, e.address), e);
  }
}
