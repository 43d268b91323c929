/** The buffer reclaimer (src/lmtp/reclaim.ts): dead message chunks do not pile up between collections. */
import { describe, expect, it } from 'vitest';
import { createBufferReclaimer } from '../../src/lmtp/reclaim.js';

const CHUNK = 64 * 1024;

/** Allocates `total` bytes as short-lived 64 KB chunks (like socket reads); returns the peak of live ArrayBuffer memory. */
function churn(total: number, onChunk: (n: number) => void): number {
  let peak = 0;
  let sink = 0;
  for (let done = 0; done < total; done += CHUNK) {
    const chunk = Buffer.allocUnsafeSlow(CHUNK);
    chunk[0] = done & 0xff;
    sink += chunk[0];
    onChunk(CHUNK);
    if ((done / CHUNK) % 16 === 0) peak = Math.max(peak, process.memoryUsage().arrayBuffers);
  }
  return peak + (sink & 0); // keep `sink` alive so the loop is not optimised away
}

describe('buffer reclaimer', () => {
  it('finds a collector even though the process was started without --expose-gc', () => {
    expect(createBufferReclaimer(1024).enabled).toBe(true);
  });

  it('keeps dead 64 KB chunks under ~2× its interval while 256 MB pass', () => {
    const reclaimer = createBufferReclaimer(4 * 1024 * 1024);
    const base = process.memoryUsage().arrayBuffers;
    const peak = churn(256 * 1024 * 1024, (n) => reclaimer.add(n));
    expect(reclaimer.collections).toBe(64);
    expect((peak - base) / 1024 / 1024).toBeLessThan(12);
  });
});
