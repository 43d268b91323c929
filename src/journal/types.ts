/**
 * The contract between the LMTP DATA path and the replay journal: the journal is one more
 * consumer of the message stream. The LMTP side calls begin() when DATA starts, write() for every
 * chunk it also sends to the backends (the bytes exactly as delivered, after any Message-ID was
 * added), and commit() once the backends' final replies are known, with the recipients that were
 * delivered (2xx). abort() when nothing was delivered. commit() resolves when the record is as
 * durable as the configured policy asks (`durable`: on disk; otherwise at once); the LMTP side
 * sends its final replies only after that. A commit() that rejects must be answered 451 for every
 * recipient: the backends have the mail, but mail we could not journal is not yet safe to ack.
 */
import type { Reply } from '../core/replies.js';

export interface JournalRecipient {
  /** The address as given in RCPT TO (what the backend received). */
  address: string;
  /** Directory user name it resolved to. */
  user: string;
  store: string;
  /** The slot it was delivered to (the store's master at RCPT time). */
  slot: string;
  /** The store's epoch at RCPT time. */
  epoch: number;
  /** The backend's final reply for this recipient. */
  reply: Reply;
}

export interface JournalMessageInfo {
  /** Postfix queue id when known (XFORWARD/received header), else our own session/transaction id. */
  queueId: string;
  mailFrom: string;
  receivedAt: Date;
}

export interface JournalEntry {
  /**
   * A chunk of the body. Must not block the caller: the journal copies it into its own frame
   * buffers, so the caller may reuse or change the chunk as soon as write() returns.
   */
  write(chunk: Buffer): void;
  commit(recipients: JournalRecipient[], summary: { messageId: string | null; size: number }): Promise<void>;
  abort(): void;
  /**
   * True once the entry is known to be unable to commit (its segment failed, the journal is
   * closed or not writable): commit() would reject. The LMTP side asks before sending the final
   * dot, so that it can abort the backend transactions instead of delivering a copy it must then
   * answer 451 for (each postfix retry would store another one). Optional: an entry without it
   * is only judged by commit().
   */
  failed?(): boolean;
}

export interface JournalSink {
  begin(info: JournalMessageInfo): JournalEntry;
}

// ---- The reading side (added by the journal work, issue #4) -------------------------------

/** One committed record, as read back from disk. */
export interface JournalRecord {
  /** Record id: 16 hex digits, unique per record. */
  id: string;
  receivedAt: Date;
  committedAt: Date;
  mailFrom: string;
  queueId: string;
  recipients: JournalRecipient[];
  size: number;
  /** SHA-256 of the body bytes, hex. */
  sha256: string;
  messageId: string | null;
  /** Where the body lives: the segment file and each BODY payload's [offset, length]. */
  location: { file: string; chunks: Array<[number, number]> };
}

export interface JournalFilter {
  /** Only records with at least one recipient on this store. */
  store?: string;
  /** Only records with at least one recipient resolved to this user. */
  user?: string;
  /** receivedAt ≥ since. */
  since?: Date;
  /** receivedAt ≤ until. */
  until?: Date;
}
