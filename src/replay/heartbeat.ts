/**
 * Registers this instance in the directory's Redis so that `storeroute replay` reaches every
 * proxy's journal. One HSET per interval; the entry is considered live for three intervals
 * (see instances.ts), so a missed beat or two while Redis restarts does not hide us.
 *
 * The entry is signed with a key derived from admin.token: the replay CLI sends that token only
 * to entries it can verify, so a URL planted in Redis by someone without the token gets nothing.
 *
 * It lives with the registry it writes (replay/instances.ts), not in admin/: the admin API only
 * serves the routes main.ts gives it, and main.ts starts this beat once that API is listening.
 *
 * Given a client (main.ts lends the directory's command connection), it writes through it and
 * never closes it. Given only the Redis config (a process with no client to lend), it opens its
 * own and closes it in stop(). Either way whoever opened the client closes it.
 */
import type { Redis } from 'ioredis';
import type { Observability } from '../core/deps.js';
import { instancesKey } from '../core/redis-keys.js';
import { closeRedisClient, createRedisClient, type RedisConfig } from '../directory/index.js';
import { encodeInstance, registryKey, signInstance } from './instances.js';

export interface Heartbeat {
  stop(): Promise<void>;
}

/** Where the entry is written. */
export type HeartbeatTarget =
  /** The caller's client, still open after stop(): the caller closes it, after stop(). */
  | { redis: Pick<Redis, 'hset' | 'hdel'>; /** config.directory.redis.keyPrefix. */ keyPrefix: string }
  /** Opens a connection of its own (CLIENT SETNAME storeroute:heartbeat) and closes it in stop(). */
  | { config: RedisConfig };

export type HeartbeatOptions = HeartbeatTarget & {
  name: string;
  url: string;
  intervalMs: number;
  obs: Observability;
  /** config.admin.token. Without it the entry is unsigned and `storeroute replay` skips this instance. */
  token?: string | undefined;
};

/** The client to write through, and what stop() must release: only a client opened here. */
function connect(target: HeartbeatTarget, obs: Observability) {
  if ('redis' in target) return { redis: target.redis, keyPrefix: target.keyPrefix, release: () => Promise.resolve() };
  const own = createRedisClient(target.config, obs, { role: 'heartbeat' });
  return { redis: own, keyPrefix: target.config.keyPrefix, release: () => closeRedisClient(own) };
}

export function startHeartbeat(opts: HeartbeatOptions): Heartbeat {
  const { name, url, intervalMs, obs, token } = opts;
  const log = obs.logger.child({ component: 'heartbeat', instance: name });
  const { redis, keyPrefix, release } = connect(opts, obs);
  const key = instancesKey(keyPrefix);
  // Derived once (scrypt is deliberately slow); every beat awaits the same promise.
  const signingKey = token ? registryKey(token) : Promise.resolve(null);
  if (!token) log.warn('heartbeat_unsigned');
  let failing = false;
  let stopped = false;
  let inflight: Promise<void> = Promise.resolve();

  const beat = async () => {
    try {
      const k = await signingKey;
      // stop() may have run while the key was derived: a late beat would re-register a stopped instance.
      if (stopped) return;
      const entry = { url, lastSeen: Date.now() };
      await redis.hset(key, name, encodeInstance(k ? signInstance(name, entry, k) : entry));
      if (failing) log.info('heartbeat_restored');
      failing = false;
    } catch (err) {
      // Only the first failure of a run is logged: Redis being away is already loud elsewhere.
      if (!failing) log.warn({ err: (err as Error).message }, 'heartbeat_failed');
      failing = true;
    }
  };
  const run = () => {
    inflight = beat();
  };
  run();
  const timer = setInterval(run, intervalMs);
  timer.unref();

  return {
    async stop() {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      await inflight;
      // Leave promptly: a stopped instance should not be asked to replay.
      await redis.hdel(key, name).catch(() => undefined);
      await release();
    },
  };
}
