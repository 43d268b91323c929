/**
 * Failed-login throttling. Only FAILURES are counted (per client IP and per login name, each in a
 * sliding window that every new failure extends), so a busy legitimate user is never slowed.
 *
 * Policy (see `throttlePolicy`):
 * - a client IP at or past `perIp` failures is refused without checking anything, with a wait
 *   that doubles with every further failure up to `maxWaitSeconds`;
 * - a user at or past `perUser` failures is refused the same way, but only from client IPs that
 *   have failed themselves: whoever has not failed from their address still gets in, so an
 *   attacker hammering one name from elsewhere does not lock its owner out;
 * - exempt networks are neither counted nor refused.
 * In `backend` verification mode the IMAP server checks passwords, so the failures we see are
 * unknown users and malformed requests; in `directory` mode wrong passwords count too.
 */
export interface ThrottleCounts {
  ip: number;
  user: number;
}

export interface ThrottleStore {
  readonly kind: 'redis' | 'memory';
  /** Failures in the current window for this client IP and this login name. */
  counts(ip: string, user: string): Promise<ThrottleCounts>;
  /** Counts one failure for both, (re)starting each window; returns the counts after it. */
  recordFailure(ip: string, user: string, windowMs: number): Promise<ThrottleCounts>;
  close(): Promise<void>;
}

export interface ThrottleConfig {
  perIp: number;
  perUser: number;
  maxWaitSeconds: number;
}

export const throttlePolicy = {
  /** Refuse before verifying anything? */
  throttled(c: ThrottleCounts, cfg: ThrottleConfig): boolean {
    return c.ip >= cfg.perIp || (c.user >= cfg.perUser && c.ip > 0);
  },
  /**
   * Auth-Wait after a failure with these counts (already including it): the base wait below the
   * limits, then doubling with every failure past a limit, capped.
   */
  waitSeconds(c: ThrottleCounts, cfg: ThrottleConfig, baseWait: number): number {
    const excess = Math.max(c.ip - cfg.perIp, c.ip > 0 ? c.user - cfg.perUser : -1);
    if (excess < 0) return baseWait;
    const grown = Math.max(baseWait, 1) * 2 ** Math.min(excess + 1, 20);
    return Math.min(cfg.maxWaitSeconds, Math.max(baseWait, grown));
  },
} as const;

interface Counter { count: number; expiresAt: number }

/**
 * In-process counters for the embedded directory (one proxy). Bounded: past `maxKeys` the oldest
 * counters are dropped first, which only ever forgives.
 */
export function createMemoryThrottleStore(options: { maxKeys?: number; now?: () => number } = {}): ThrottleStore {
  const maxKeys = options.maxKeys ?? 100_000;
  const now = options.now ?? Date.now;
  const counters = new Map<string, Counter>();

  function read(key: string, t: number): number {
    const c = counters.get(key);
    if (!c) return 0;
    if (c.expiresAt <= t) { counters.delete(key); return 0; }
    return c.count;
  }

  function bump(key: string, t: number, windowMs: number): number {
    const count = read(key, t) + 1;
    counters.delete(key); // re-insert so Map order is "least recently failed first"
    counters.set(key, { count, expiresAt: t + windowMs });
    while (counters.size > maxKeys) {
      const oldest = counters.keys().next().value;
      if (oldest === undefined) break;
      counters.delete(oldest);
    }
    return count;
  }

  return {
    kind: 'memory',
    counts(ip, user) {
      const t = now();
      return Promise.resolve({ ip: read(`ip:${ip}`, t), user: read(`user:${user}`, t) });
    },
    recordFailure(ip, user, windowMs) {
      const t = now();
      return Promise.resolve({ ip: bump(`ip:${ip}`, t, windowMs), user: bump(`user:${user}`, t, windowMs) });
    },
    close() {
      counters.clear();
      return Promise.resolve();
    },
  };
}
