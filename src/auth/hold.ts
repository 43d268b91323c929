/**
 * How long a login has been held with WAIT. nginx re-asks after Auth-Wait without counting an
 * attempt and without telling us how long it has waited, so we remember, per (protocol, login
 * name, client IP), when the hold began and when we last answered it.
 *
 * An episode ends when a non-WAIT answer is given for that key, or when nobody has asked for
 * longer than `staleMs` (the session went away). Several sessions of one user from one address
 * (a phone's many IMAP connections) share an episode: holding is bounded in wall time per user
 * and address, which is the promise made to operators (holdMaxMs).
 *
 * In memory and per process: with several storeroute processes behind one nginx, a login may be
 * held up to holdMaxMs on each, which is still bounded.
 */
export interface HoldTracker {
  /** Milliseconds this key has been held, counting this request (0 for a new episode). */
  held(key: string): number;
  /** The key got a non-WAIT answer: its episode is over. */
  release(key: string): void;
  readonly size: number;
  close(): void;
}

export function createHoldTracker(options: { staleMs: number; maxKeys?: number; now?: () => number }): HoldTracker {
  const now = options.now ?? Date.now;
  const maxKeys = options.maxKeys ?? 100_000;
  const episodes = new Map<string, { first: number; last: number }>();

  function sweep(): void {
    const t = now();
    for (const [k, e] of episodes) if (t - e.last > options.staleMs) episodes.delete(k);
  }
  const timer = setInterval(sweep, Math.max(1_000, options.staleMs));
  timer.unref();

  return {
    held(key) {
      const t = now();
      const e = episodes.get(key);
      if (e && t - e.last <= options.staleMs) {
        e.last = t;
        return t - e.first;
      }
      episodes.delete(key);
      episodes.set(key, { first: t, last: t });
      // Bounded: drop the oldest episodes first; a dropped one restarts its hold, still bounded.
      while (episodes.size > maxKeys) {
        const oldest = episodes.keys().next().value;
        if (oldest === undefined) break;
        episodes.delete(oldest);
      }
      return 0;
    },
    release(key) {
      episodes.delete(key);
    },
    get size() { return episodes.size; },
    close() {
      clearInterval(timer);
      episodes.clear();
    },
  };
}
