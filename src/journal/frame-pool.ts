/**
 * Reused buffers that BODY frames are built in. The entry copies each body chunk into a pooled
 * buffer (header room, payload, trailer and room for the COMMIT frame), so a frame leaves as one
 * contiguous buffer and the socket chunks it came from die young.
 *
 * Why: holding the socket's own chunks until the journal's write completed kept them (and the
 * 64 KB read slabs behind them) alive across the proxy's forced scavenges, so they were promoted
 * and needed major collections: measured in the LMTP proxy at 100 KB × 20 sessions, ~60 µs per
 * message of extra GC work on V8's helper threads plus concurrent marking on the main thread,
 * against ~10 µs for copying 100 KB into a buffer already in the cache.
 */
import { FRAME_OVERHEAD } from './frame.js';

/** Payload bytes of a full BODY frame. */
export const BODY_FRAME_BYTES = 64 * 1024;
/** Room after a partial last BODY frame for the COMMIT frame, so a small record is one buffer. */
export const COMMIT_ROOM = 4 * 1024;
export const POOLED_BUFFER_BYTES = FRAME_OVERHEAD + BODY_FRAME_BYTES + COMMIT_ROOM;

export class FramePool {
  readonly #free: Buffer[] = [];
  readonly #keep: number;

  /** `keep`: how many free buffers to hold on to (each ~68 KiB); more are left to the GC. */
  constructor(keep = 64) {
    this.#keep = keep;
  }

  take(): Buffer {
    // allocUnsafeSlow: a buffer of its own (never a slice of Node's shared pool), reused for life.
    return this.#free.pop() ?? Buffer.allocUnsafeSlow(POOLED_BUFFER_BYTES);
  }

  /** The buffer's bytes are no longer needed (written to the file, or the record was dropped). */
  give(buf: Buffer): void {
    if (this.#free.length < this.#keep) this.#free.push(buf);
  }

  get free(): number {
    return this.#free.length;
  }
}
