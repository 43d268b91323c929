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
 *
 * Two sizes: a record starts in a small buffer (most mail is a few KB, and a 4 KB record should
 * not pin 68 KiB while it waits for its write) and moves to a full-frame one when it outgrows it.
 */
import { FRAME_OVERHEAD } from './frame.js';

/** Payload bytes of a full BODY frame. */
export const BODY_FRAME_BYTES = 64 * 1024;
/** Room after a partial last BODY frame for the COMMIT frame, so a small record is one buffer. */
export const COMMIT_ROOM = 4 * 1024;
export const LARGE_BUFFER_BYTES = FRAME_OVERHEAD + BODY_FRAME_BYTES + COMMIT_ROOM;
export const SMALL_BUFFER_BYTES = 16 * 1024;
/** Payload that fits a small buffer with its frame overhead and the COMMIT room. */
export const SMALL_PAYLOAD_BYTES = SMALL_BUFFER_BYTES - FRAME_OVERHEAD - COMMIT_ROOM;

export class FramePool {
  readonly #small: Buffer[] = [];
  readonly #large: Buffer[] = [];
  readonly #keepSmall: number;
  readonly #keepLarge: number;

  /** How many free buffers of each size to hold on to (defaults: 4 MiB of each); more go to the GC. */
  constructor(keepSmall = 256, keepLarge = 64) {
    this.#keepSmall = keepSmall;
    this.#keepLarge = keepLarge;
  }

  // allocUnsafeSlow: buffers of their own (never slices of Node's shared pool), reused for life.
  takeSmall(): Buffer {
    return this.#small.pop() ?? Buffer.allocUnsafeSlow(SMALL_BUFFER_BYTES);
  }

  takeLarge(): Buffer {
    return this.#large.pop() ?? Buffer.allocUnsafeSlow(LARGE_BUFFER_BYTES);
  }

  /** The buffer's bytes are no longer needed (written to the file, or the record was dropped). */
  give(buf: Buffer): void {
    if (buf.length === LARGE_BUFFER_BYTES) {
      if (this.#large.length < this.#keepLarge) this.#large.push(buf);
    } else if (this.#small.length < this.#keepSmall) {
      this.#small.push(buf);
    }
  }
}
