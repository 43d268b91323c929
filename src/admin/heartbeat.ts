/**
 * Registers this instance in the directory's Redis so that `storeroute replay` reaches every
 * proxy's journal. One HSET per interval; the entry is considered live for three intervals
 * (see journal/instances.ts), so a missed beat or two while Redis restarts does not hide us.
 */
import type { Observability } from '../core/deps.js';
import { createRedisClient, type RedisConfig } from '../directory/index.js';
import { instancesKey, encodeInstance } from '../journal/instances.js';

export interface Heartbeat {
  stop(): Promise<void>;
}

export function startHeartbeat(opts: { config: RedisConfig; name: string; url: string; intervalMs: number; obs: Observability }): Heartbeat {
  const { config, name, url, intervalMs, obs } = opts;
  const log = obs.logger.child({ component: 'heartbeat', instance: name });
  const redis = createRedisClient(config, obs);
  const key = instancesKey(config.keyPrefix);
  let failing = false;

  const beat = async () => {
    try {
      await redis.hset(key, name, encodeInstance({ url, lastSeen: Date.now() }));
      if (failing) log.info('heartbeat_restored');
      failing = false;
    } catch (err) {
      // Only the first failure of a run is logged: Redis being away is already loud elsewhere.
      if (!failing) log.warn({ err: (err as Error).message }, 'heartbeat_failed');
      failing = true;
    }
  };
  void beat();
  const timer = setInterval(() => void beat(), intervalMs);
  timer.unref();

  return {
    async stop() {
      clearInterval(timer);
      // Leave promptly: a stopped instance should not be asked to replay.
      await redis.hdel(key, name).catch(() => undefined);
      redis.disconnect();
    },
  };
}
