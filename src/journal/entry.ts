/**
 * One message on its way into the journal: body chunks are copied into BODY frames of up to
 * 64 KiB built in pooled buffers (frame-pool.ts), and commit() adds the COMMIT frame with the
 * record's meta, in the same buffer when it fits. A record's frames go to the segment together,
 * at commit (or every MAX_HELD_FRAMES full frames for a large message), as one append: one write
 * per record instead of one per frame. Nothing here blocks.
 */
import { createHash, type Hash } from 'node:crypto';
import { FRAME_BODY, FRAME_COMMIT, FRAME_OVERHEAD, HEADER_BYTES, frameParts, sealFrameAt } from './frame.js';
import { BODY_FRAME_BYTES, LARGE_BUFFER_BYTES, SMALL_PAYLOAD_BYTES, type FramePool } from './frame-pool.js';
import type { CommitMeta } from './reader.js';
import type { SegmentWriter } from './segment.js';
import type { JournalEntry, JournalMessageInfo, JournalRecipient } from './types.js';

export { BODY_FRAME_BYTES } from './frame-pool.js';

/**
 * Full frames an entry keeps before handing them to the segment: a 100 KB message (one full
 * frame, the rest and the COMMIT) is one append; a 5 MB one holds at most ~200 KiB at a time.
 */
const MAX_HELD_FRAMES = 3;

/** What an entry needs from the journal that made it. */
export interface EntryHost {
  now(): number;
  /** 8 fresh random bytes: the new record's id. */
  recordId(): Buffer;
  /** Buffers for frames, given back by the segment once written. */
  readonly frames: FramePool;
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
  /** The frame being filled (pooled), and how many payload bytes it holds. */
  #buf: Buffer | null = null;
  #fill = 0;
  /** Sealed frames not yet appended, their pooled buffers, and their total size. */
  #ready: Buffer[] = [];
  #readyPooled: Buffer[] = [];
  #readyBytes = 0;
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

  /** Copies the chunk: the caller may reuse it as soon as this returns. */
  write(chunk: Buffer): void {
    if (this.#state !== 'open' || chunk.length === 0) return;
    this.#hash.update(chunk);
    this.#size += chunk.length;
    let from = 0;
    while (from < chunk.length) {
      const buf = this.#frameFor(chunk.length - from);
      const n = Math.min(chunk.length - from, BODY_FRAME_BYTES - this.#fill);
      chunk.copy(buf, HEADER_BYTES + this.#fill, from, from + n);
      this.#fill += n;
      from += n;
      if (this.#fill === BODY_FRAME_BYTES) this.#sealBody();
    }
  }

  commit(recipients: JournalRecipient[], summary: { messageId: string | null; size: number }): Promise<void> {
    if (this.#state !== 'open') return Promise.reject(new Error(`journal entry already ${this.#state}`));
    this.#state = 'committed';
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
      chunks: this.#seq + (this.#fill > 0 ? 1 : 0),
    };
    const json = JSON.stringify(meta);
    const jsonBytes = Buffer.byteLength(json, 'utf8');
    const buf = this.#buf;
    if (buf && this.#fill > 0) {
      // The last, partial BODY frame; the COMMIT frame follows it in the same buffer when it fits.
      const bodyEnd = FRAME_OVERHEAD + this.#fill;
      this.#sealBody();
      if (bodyEnd + FRAME_OVERHEAD + jsonBytes <= buf.length) {
        buf.write(json, bodyEnd + HEADER_BYTES, 'utf8');
        this.#push(sealFrameAt(buf, bodyEnd, FRAME_COMMIT, this.#rawId, this.#seq, jsonBytes), null);
      } else {
        this.#pushCommit(json);
      }
    } else {
      if (buf) this.#host.frames.give(buf); // taken but never filled: the body ended on a frame boundary
      this.#buf = null;
      this.#pushCommit(json);
    }
    this.#appendReady();
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
    // Never written: the buffers go straight back. Frames already appended stay behind without
    // a COMMIT, and readers ignore them.
    if (this.#buf) this.#host.frames.give(this.#buf);
    for (const b of this.#readyPooled) this.#host.frames.give(b);
    this.#buf = null;
    this.#ready = [];
    this.#readyPooled = [];
    this.#readyBytes = 0;
    this.#host.released(this.#seg);
  }

  /**
   * The buffer to copy into next: a small one for a record's first frame while its payload fits
   * (then the COMMIT room too), a full-frame one otherwise, moving what the small one holds.
   */
  #frameFor(more: number): Buffer {
    const pool = this.#host.frames;
    const buf = this.#buf;
    if (!buf) {
      return (this.#buf = this.#seq === 0 && more <= SMALL_PAYLOAD_BYTES ? pool.takeSmall() : pool.takeLarge());
    }
    if (buf.length === LARGE_BUFFER_BYTES || this.#fill + more <= SMALL_PAYLOAD_BYTES) return buf;
    const large = pool.takeLarge();
    buf.copy(large, HEADER_BYTES, HEADER_BYTES, HEADER_BYTES + this.#fill);
    pool.give(buf);
    return (this.#buf = large);
  }

  /** Seals the frame being filled (header, checksums) and queues it with the record's others. */
  #sealBody(): void {
    const buf = this.#buf!;
    this.#push(sealFrameAt(buf, 0, FRAME_BODY, this.#rawId, this.#seq, this.#fill), buf);
    this.#seq += 1;
    this.#buf = null;
    this.#fill = 0;
    if (this.#state === 'open' && this.#readyPooled.length >= MAX_HELD_FRAMES) this.#appendReady();
  }

  #pushCommit(json: string): void {
    const payload = Buffer.from(json, 'utf8');
    const parts = frameParts(FRAME_COMMIT, this.#rawId, this.#seq, [payload], payload.length);
    for (const p of parts) this.#push(p, null);
  }

  #push(frame: Buffer, pooled: Buffer | null): void {
    this.#ready.push(frame);
    if (pooled) this.#readyPooled.push(pooled);
    this.#readyBytes += frame.length;
  }

  #appendReady(): void {
    if (this.#ready.length === 0) return;
    this.#seg.append(this.#ready, this.#readyBytes, this.#readyPooled);
    this.#ready = [];
    this.#readyPooled = [];
    this.#readyBytes = 0;
  }
}
