/**
 * One message on its way into the journal: body chunks are coalesced into BODY frames of up to
 * 64 KiB (so a message of one-line chunks does not cost a frame per line) and streamed to the
 * segment; commit() appends the COMMIT frame with the record's meta. Nothing here blocks.
 */
import { createHash, randomBytes, type Hash } from 'node:crypto';
import { encodeFrame, FRAME_BODY, FRAME_COMMIT } from './frame.js';
import type { CommitMeta } from './reader.js';
import type { SegmentWriter } from './segment.js';
import type { JournalEntry, JournalMessageInfo, JournalRecipient } from './types.js';

export const BODY_FRAME_BYTES = 64 * 1024;

/** What an entry needs from the journal that made it. */
export interface EntryHost {
  now(): number;
  /** Resolves when the record is as durable as configured; rejects with the reason it is not. */
  settle(seg: SegmentWriter): Promise<void>;
  /** False once settle() would reject at once (the segment failed, the journal closed). */
  writable(seg: SegmentWriter): boolean;
  /** The record left the segment (committed or aborted): the segment may seal or rotate. */
  released(seg: SegmentWriter): void;
  warnSizeMismatch(id: string, told: number, counted: number): void;
}

export class Entry implements JournalEntry {
  readonly #host: EntryHost;
  readonly #seg: SegmentWriter;
  readonly #info: JournalMessageInfo;
  readonly #rawId = randomBytes(8);
  readonly #hash: Hash = createHash('sha256');
  #held: Buffer[] = [];
  #heldBytes = 0;
  #size = 0;
  #seq = 0;
  #state: 'open' | 'committed' | 'aborted' = 'open';

  constructor(host: EntryHost, seg: SegmentWriter, info: JournalMessageInfo) {
    this.#host = host;
    this.#seg = seg;
    this.#info = info;
    seg.inflight += 1;
  }

  get id(): string {
    return this.#rawId.toString('hex');
  }

  write(chunk: Buffer): void {
    if (this.#state !== 'open' || chunk.length === 0) return;
    this.#hash.update(chunk);
    this.#size += chunk.length;
    this.#held.push(chunk);
    this.#heldBytes += chunk.length;
    while (this.#heldBytes >= BODY_FRAME_BYTES) this.#emit(BODY_FRAME_BYTES);
  }

  commit(recipients: JournalRecipient[], summary: { messageId: string | null; size: number }): Promise<void> {
    if (this.#state !== 'open') return Promise.reject(new Error(`journal entry already ${this.#state}`));
    this.#state = 'committed';
    if (this.#heldBytes > 0) this.#emit(this.#heldBytes);
    if (summary.size !== this.#size) this.#host.warnSizeMismatch(this.id, summary.size, this.#size);
    const now = this.#host.now();
    const meta: CommitMeta = {
      v: 1,
      id: this.id,
      receivedAt: this.#info.receivedAt.getTime(),
      committedAt: now,
      mailFrom: this.#info.mailFrom,
      queueId: this.#info.queueId,
      recipients: recipients.map((r) => ({
        address: r.address, user: r.user, store: r.store, slot: r.slot, epoch: r.epoch,
        reply: { code: r.reply.code, enhanced: r.reply.enhanced, text: r.reply.text },
      })),
      size: this.#size,
      sha256: this.#hash.digest('hex'),
      messageId: summary.messageId,
      chunks: this.#seq,
    };
    this.#seg.append(encodeFrame(FRAME_COMMIT, this.#rawId, this.#seq, Buffer.from(JSON.stringify(meta), 'utf8')));
    this.#seg.noteCommit(now);
    const settled = this.#host.settle(this.#seg);
    this.#host.released(this.#seg);
    return settled;
  }

  /** commit() would reject: the segment this record streams into failed, or the journal closed. */
  failed(): boolean {
    return !this.#host.writable(this.#seg);
  }

  abort(): void {
    if (this.#state !== 'open') return;
    this.#state = 'aborted';
    this.#held = [];
    this.#heldBytes = 0;
    // Frames already written stay behind without a COMMIT: readers ignore them.
    this.#host.released(this.#seg);
  }

  #emit(bytes: number): void {
    const all = this.#held.length === 1 ? this.#held[0]! : Buffer.concat(this.#held, this.#heldBytes);
    const payload = all.subarray(0, bytes);
    const rest = all.subarray(bytes);
    this.#held = rest.length > 0 ? [rest] : [];
    this.#heldBytes = rest.length;
    this.#seg.append(encodeFrame(FRAME_BODY, this.#rawId, this.#seq, payload));
    this.#seq += 1;
  }
}
