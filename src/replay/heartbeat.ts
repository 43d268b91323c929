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
 */
import type { Observability } from '../core/deps.js';
import { createRedisClient, type RedisConfig } from '../directory/index.js';
import { instancesKey, encodeInstance, registryKey, signInstance } from './instances.js';

export interface Heartbeat {
  stop(): Promise<void>;
}

export interface HeartbeatOptions {
  config: RedisConfig;
  name: string;
  url: string;
  intervalMs: number;
  obs: Observability;
  /** config.admin.token. Without it the entry is unsigned and `storeroute replay` skips this instance. */
  token?: string | undefined;
}

export function startHeartbeat(opts: HeartbeatOptions): Heartbeat {
  const { config, name, url, intervalMs, obs, token } = opts;
  const log = obs.logger.child({ component: 'heartbeat', instance: name });
  const redis = createRedisClient(config, obs);
  const key = instancesKey(config.keyPrefix);
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
      stopped = true;
      clearInterval(timer);
      await inflight;
      // Leave promptly: a stopped instance should not be asked to replay.
      await redis.hdel(key, name).catch(() => undefined);
      redis.disconnect();
    },
  };
}
