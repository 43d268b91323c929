import { describe, it, expect } from 'vitest';
import { JobQueue, TokenBucket, type Clock } from '../../src/check/index.js';

/** A clock whose sleep advances time at once: the bucket's schedule is checked without waiting. */
function fakeClock(): Clock & { slept: number[] } {
  let t = 1_000;
  const slept: number[] = [];
  return { slept, now: () => t, sleep: async (ms) => { slept.push(ms); t += ms; } };
}

describe('rate limit (token bucket)', () => {
  it('spaces starts 1/rate apart', async () => {
    const clock = fakeClock();
    const bucket = new TokenBucket(4, clock);
    for (let i = 0; i < 4; i++) await bucket.take();
    expect(clock.slept).toEqual([250, 250, 250]);
  });

  it('rates below one user per second work', async () => {
    const clock = fakeClock();
    const bucket = new TokenBucket(0.5, clock);
    await bucket.take();
    await bucket.take();
    expect(clock.slept).toEqual([2000]);
  });

  it('refuses a rate of 0, a negative or a non-number', () => {
    for (const r of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) expect(() => new TokenBucket(r)).toThrow(RangeError);
  });
});

describe('job queue', () => {
  it('hands out jobs in order, a delayed job when due, and null once all are done', async () => {
    const q = new JobQueue(['a', 'b']);
    const seen: string[] = [];
    const worker = async () => {
      for (let j = await q.take(); j !== null; j = await q.take()) {
        seen.push(j);
        if (j === 'a') q.push('a-again', Date.now() + 30);
        q.done();
      }
    };
    const started = Date.now();
    await Promise.all([worker(), worker()]);
    expect(seen).toEqual(['a', 'b', 'a-again']);
    expect(Date.now() - started).toBeGreaterThanOrEqual(25);
  });
});
