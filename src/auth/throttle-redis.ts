/**
 * Failure counters in Redis, shared by every proxy. Keys (all here, all under one hash tag so the
 * script's two keys live in one Cluster slot):
 *   <prefix>{auth}:fail:ip:<client ip>
 *   <prefix>{auth}:fail:user:<login name>
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Cluster, Redis } from 'ioredis';
import type { ThrottleCounts, ThrottleStore } from './throttle.js';

/** Versioned so two releases with different script bodies can share one Redis during a rollout. */
const RECORD_FAILURE = 'storerouteAuthRecordFailureV1';

export function throttleKeys(prefix: string) {
  return {
    ip: (ip: string) => `${prefix}{auth}:fail:ip:${ip}`,
    user: (user: string) => `${prefix}{auth}:fail:user:${user}`,
  };
}

type RecordFailure = (ipKey: string, userKey: string, windowMs: number) => Promise<unknown>;

function toCount(v: unknown): number {
  const n = typeof v === 'number' ? v : typeof v === 'string' ? Number(v) : 0;
  return Number.isFinite(n) && n > 0 ? n : 0;
}

export interface RedisThrottleOptions {
  /** An ioredis client (standalone, Sentinel or Cluster). Not closed by `close()` unless `ownsClient`. */
  client: Redis | Cluster;
  /** Same prefix as the directory's keys, e.g. "storeroute:". */
  keyPrefix: string;
  ownsClient?: boolean;
}

export function createRedisThrottleStore(options: RedisThrottleOptions): ThrottleStore {
  const { client, keyPrefix } = options;
  const keys = throttleKeys(keyPrefix);
  const lua = readFileSync(fileURLToPath(new URL('./lua/record-failure.lua', import.meta.url)), 'utf8');
  // defineCommand sends EVALSHA and falls back to EVAL on NOSCRIPT, so a SCRIPT FLUSH heals itself.
  client.defineCommand(RECORD_FAILURE, { numberOfKeys: 2, lua });
  const recordFailureScript = (client as unknown as Record<string, RecordFailure>)[RECORD_FAILURE]!.bind(client);

  return {
    kind: 'redis',
    async counts(ip, user): Promise<ThrottleCounts> {
      const [ipCount, userCount] = await client.mget(keys.ip(ip), keys.user(user));
      return { ip: toCount(ipCount), user: toCount(userCount) };
    },
    async recordFailure(ip, user, windowMs): Promise<ThrottleCounts> {
      const reply = await recordFailureScript(keys.ip(ip), keys.user(user), Math.max(1, Math.round(windowMs)));
      if (!Array.isArray(reply) || reply.length !== 2) throw new Error(`${RECORD_FAILURE}: unexpected reply ${JSON.stringify(reply)}`);
      return { ip: toCount(reply[0]), user: toCount(reply[1]) };
    },
    async close() {
      if (options.ownsClient) await client.quit().catch(() => client.disconnect());
    },
  };
}
