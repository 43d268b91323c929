/**
 * Pacing and ordering of the per-user work: a rate limit in users per second (FastMail ran their
 * `sync_all_users` rate-controlled so a whole-cluster pass could run through the day) and a queue
 * whose jobs may wait for a time (a user re-checked "after a short wait" must not hold a worker,
 * or one store failing over would stall the whole run).
 */

export interface Clock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

export const realClock: Clock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms))),
};

/**
 * Token bucket as a schedule: each `take()` reserves the next start time, 1/rate after the last
 * one; up to `burst` starts may be taken at once after an idle spell. Rates below 1 work
 * (0.5 = one user every 2 s).
 */
export class TokenBucket {
  readonly #intervalMs: number;
  readonly #burstMs: number;
  readonly #clock: Clock;
  #next = -Infinity;

  constructor(ratePerSecond: number, clock: Clock = realClock, burst = 1) {
    if (!(Number.isFinite(ratePerSecond) && ratePerSecond > 0)) throw new RangeError(`rate must be a number above 0, got ${ratePerSecond}`);
    this.#intervalMs = 1000 / ratePerSecond;
    this.#burstMs = Math.max(0, burst - 1) * this.#intervalMs;
    this.#clock = clock;
  }

  /** Resolves when the caller may start one more user. */
  async take(): Promise<void> {
    const now = this.#clock.now();
    const start = Math.max(this.#next, now - this.#burstMs);
    this.#next = start + this.#intervalMs;
    if (start > now) await this.#clock.sleep(start - now);
  }
}

interface Job<T> {
  item: T;
  notBefore: number;
}

/**
 * Work items, each runnable from its `notBefore` time. `take()` answers the next runnable item,
 * waits for one, or answers null once nothing is queued and nothing is running (a running job may
 * still queue a follow-up, so "empty" alone does not mean "done").
 */
export class JobQueue<T> {
  readonly #jobs: Job<T>[] = [];
  readonly #clock: Clock;
  #running = 0;
  #wake: (() => void) | null = null;
  #stopped = false;

  constructor(items: Iterable<T>, clock: Clock = realClock) {
    for (const item of items) this.#jobs.push({ item, notBefore: 0 });
    this.#clock = clock;
  }

  get pending(): number {
    return this.#jobs.length;
  }

  push(item: T, notBefore = 0): void {
    this.#jobs.push({ item, notBefore });
    this.#poke();
  }

  /** Marks one taken job as finished. */
  done(): void {
    this.#running--;
    this.#poke();
  }

  /** No more jobs are handed out (an abort): take() answers null. */
  stop(): void {
    this.#stopped = true;
    this.#poke();
  }

  #poke(): void {
    const w = this.#wake;
    this.#wake = null;
    w?.();
  }

  async take(): Promise<T | null> {
    for (;;) {
      if (this.#stopped) return null;
      const now = this.#clock.now();
      let soonest = -1;
      for (let i = 0; i < this.#jobs.length; i++) {
        if (soonest < 0 || this.#jobs[i]!.notBefore < this.#jobs[soonest]!.notBefore) soonest = i;
        // Queue order among runnable jobs: the first one due wins, so users start in order.
        if (this.#jobs[i]!.notBefore <= now) {
          soonest = i;
          break;
        }
      }
      if (soonest >= 0 && this.#jobs[soonest]!.notBefore <= now) {
        this.#running++;
        return this.#jobs.splice(soonest, 1)[0]!.item;
      }
      if (soonest < 0 && this.#running === 0) return null;
      // Several workers may wait at once: chain the wake-ups so a push wakes all of them.
      const previous = this.#wake;
      const waitMs = soonest >= 0 ? this.#jobs[soonest]!.notBefore - now : null;
      await new Promise<void>((resolve) => {
        let timer: NodeJS.Timeout | undefined;
        this.#wake = () => {
          clearTimeout(timer);
          previous?.();
          resolve();
        };
        if (waitMs !== null) timer = setTimeout(() => this.#poke(), waitMs);
      });
    }
  }
}
