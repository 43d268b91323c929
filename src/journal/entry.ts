/**
 * One message on its way into the journal: body chunks are gathered into BODY frames of up to
 * 64 KiB (so a message of one-line chunks does not cost a frame per line) and streamed to the
 * segment; commit() appends the COMMIT frame with the record's meta. Nothing here blocks.
 * Chunks are never copied: a frame is written from the caller's buffers themselves (split with
 * subarray at the 64 KiB boundary), so the caller must not change a chunk after write().
 */
import { createHash, type Hash } from 'node:crypto';
import { FRAME_BODY, FRAME_COMMIT, FRAME_OVERHEAD, frameParts } from './frame.js';
import type { CommitMeta } from './reader.js';
import type { SegmentWriter } from './segment.js';
import type { JournalEntry, JournalMessageInfo, JournalRecipient } from './types.js';

export const BODY_FRAME_BYTES = 64 * 1024;

/** What an entry needs from the journal that made it. */
export interface EntryHost {
  now(): number;
  /** 8 fresh random bytes: the new record's id. */
  recordId(): Buffer;
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
  readonly #rawId: Buffer;
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
    this.#rawId = host.recordId();
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
    const json = Buffer.from(JSON.stringify(meta), 'utf8');
    this.#seg.append(frameParts(FRAME_COMMIT, this.#rawId, this.#seq, [json], json.length), FRAME_OVERHEAD + json.length);
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

  /** Frames the first `bytes` held bytes, splitting a chunk (not copying it) at the boundary. */
  #emit(bytes: number): void {
    let parts: Buffer[];
    if (bytes === this.#heldBytes) {
      parts = this.#held;
      this.#held = [];
    } else {
      parts = [];
      let need = bytes;
      let i = 0;
      for (; need > 0; i++) {
        const chunk = this.#held[i]!;
        if (chunk.length <= need) {
          parts.push(chunk);
          need -= chunk.length;
        } else {
          parts.push(chunk.subarray(0, need));
          this.#held[i] = chunk.subarray(need);
          break;
        }
      }
      this.#held = this.#held.slice(i);
    }
    this.#heldBytes -= bytes;
    this.#seg.append(frameParts(FRAME_BODY, this.#rawId, this.#seq, parts, bytes), FRAME_OVERHEAD + bytes);
    this.#seq += 1;
  }
}
