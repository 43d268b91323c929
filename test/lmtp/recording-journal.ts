/**
 * A JournalSink for LMTP tests that records what the DATA path hands it (the journal's own
 * implementation is tested in test/journal). `failing` makes every entry report itself failed
 * (as the file journal's entries do once its segment cannot be written), `failCommit` makes
 * commit() reject, `hangCommit` makes it never settle (a hung fdatasync).
 */
import type { JournalEntry, JournalMessageInfo, JournalRecipient, JournalSink } from '../../src/journal/types.js';

export interface RecordedEntry {
  info: JournalMessageInfo;
  bytes: Buffer[];
  committed?: { recipients: JournalRecipient[]; messageId: string | null; size: number };
  aborted: boolean;
}

export class RecordingJournal implements JournalSink {
  entries: RecordedEntry[] = [];
  failCommit = false;
  hangCommit = false;
  failing = false;

  begin(info: JournalMessageInfo): JournalEntry {
    const e: RecordedEntry = { info, bytes: [], aborted: false };
    this.entries.push(e);
    return {
      write: (b) => { e.bytes.push(Buffer.from(b)); },
      commit: async (recipients, summary) => {
        if (this.hangCommit) return new Promise<void>(() => undefined);
        if (this.failCommit || this.failing) throw new Error('disk full');
        e.committed = { recipients, ...summary };
      },
      abort: () => { e.aborted = true; },
      failed: () => this.failing,
    };
  }
}
