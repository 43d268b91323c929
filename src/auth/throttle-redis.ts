/**
 * Failure counters in Redis, shared by every proxy. The keys come from core/redis-keys.ts (both
 * under the `{auth}` hash tag, so the script's two keys live in one Cluster slot); the script is
 * ./lua/record-failure.lua, registered through the directory's one registration path.
 *
 * The client is the caller's (main.ts lends the directory's command connection): this store never
 * closes it.
 */
import type { Cluster, Redis } from 'ioredis';
import { authThrottleKeys } from '../core/redis-keys.js';
import { readLuaFile, registerScript, scriptCommandName } from '../directory/index.js';
import type { ThrottleCounts, ThrottleStore } from './throttle.js';

/** Registered as `sr_recordFailure_v1`; bump the version whenever record-failure.lua's contract changes. */
const RECORD_FAILURE = { name: 'recordFailure', version: 1, numberOfKeys: 2 } as const;

function toCount(v: unknown): number {
  const n = typeof v === 'number' ? v : typeof v === 'string' ? Number(v) : 0;
  return Number.isFinite(n) && n > 0 ? n : 0;
}

export interface RedisThrottleOptions {
  /** An ioredis client (standalone, Sentinel or Cluster); the caller's to close. */
  client: Redis | Cluster;
  /** Same prefix as the directory's keys, e.g. "storeroute:". */
  keyPrefix: string;
}

export function createRedisThrottleStore(options: RedisThrottleOptions): ThrottleStore {
  const { client, keyPrefix } = options;
  const keys = authThrottleKeys(keyPrefix);
  const recordFailureScript = registerScript(client,
    { ...RECORD_FAILURE, lua: readLuaFile(new URL('./lua/record-failure.lua', import.meta.url)) });

  return {
    kind: 'redis',
    async counts(ip, user): Promise<ThrottleCounts> {
      const [ipCount, userCount] = await client.mget(keys.ip(ip), keys.user(user));
      return { ip: toCount(ipCount), user: toCount(userCount) };
    },
    async recordFailure(ip, user, windowMs): Promise<ThrottleCounts> {
      const reply = await recordFailureScript(keys.ip(ip), keys.user(user), Math.max(1, Math.round(windowMs)));
      if (!Array.isArray(reply) || reply.length !== 2) throw new Error(`${scriptCommandName(RECORD_FAILURE.name, RECORD_FAILURE.version)}: unexpected reply ${JSON.stringify(reply)}`);
      return { ip: toCount(reply[0]), user: toCount(reply[1]) };
    },
    close() {
      // Nothing of its own to release: the client belongs to whoever opened it.
      return Promise.resolve();
    },
  };
}
