/**
 * The one way storeroute opens a Redis connection: standalone or Sentinel, an `error` listener always attached (an unhandled `error`
 * event would crash the process), and a reconnect backoff short enough that a restarted Redis is
 * used again within half a second (ioredis' default can leave ~5 s).
 *
 * A serving process opens two: main.ts opens the command connection and lends it to the
 * directory, the auth throttle and the instance heartbeat; the directory opens its subscriber
 * (a connection in SUBSCRIBE mode cannot send other commands, so it is never shared). Whoever
 * opens a client closes it, once, with `closeRedisClient`; a borrower never does.
 */
import { Redis, type RedisOptions } from 'ioredis';
import type { Observability } from '../../core/deps.js';
import type { Config } from '../../config/index.js';

export type RedisConfig = Config['directory']['redis'];

export interface RedisClientOptions {
  /** Shown in logs and as CLIENT SETNAME `storeroute:<role>` (e.g. "command", "directory-sub", "replay-cli"). */
  role?: string;
  /** Extra ioredis options (e.g. `autoResubscribe: false` for a subscriber that re-subscribes itself). */
  extra?: Partial<RedisOptions>;
}

/** Reconnect delay: fast at first, capped at 500 ms, never giving up (a proxy must come back on its own). */
export function reconnectDelay(attempt: number): number {
  return Math.min(25 * 2 ** Math.min(attempt, 5), 500);
}

export function createRedisClient(config: RedisConfig, obs: Observability, options: RedisClientOptions = {}): Redis {
  const role = options.role ?? 'storeroute';
  const common: RedisOptions = {
    connectionName: `storeroute:${role}`,
    connectTimeout: config.connectTimeoutMs,
    commandTimeout: config.commandTimeoutMs,
    // A lookup must fail fast (→ 4xx, postfix retries), not queue for minutes behind a dead link.
    maxRetriesPerRequest: 1,
    retryStrategy: reconnectDelay,
    // TCP keepalive probes after 10 s idle: a backstop for dead peers (the kernel's probe interval
    // and count still make it slow; the directory's liveness check is what notices in time).
    keepAlive: 10_000,
    ...(config.password !== undefined ? { password: config.password } : {}),
    ...options.extra,
  };
  const client = config.sentinels
    // `password` is the data nodes' password, `sentinelPassword` the Sentinels' (never one for the other).
    ? new Redis({ ...common, sentinels: config.sentinels, name: config.masterName,
      ...(config.sentinelPassword !== undefined ? { sentinelPassword: config.sentinelPassword } : {}) })
    : new Redis(config.url, common);

  // Log the first error of an outage at warn, the reconnect attempts after it at debug.
  let healthy = true;
  client.on('error', (err: Error) => {
    if (healthy) obs.logger.warn({ role, err: { message: err.message, code: (err as NodeJS.ErrnoException).code } }, 'redis_error');
    else obs.logger.debug({ role, err: { message: err.message } }, 'redis_error');
    healthy = false;
  });
  client.on('ready', () => {
    if (!healthy) obs.logger.info({ role }, 'redis_ready');
    healthy = true;
  });
  return client;
}

/**
 * QUIT (replies still pending are answered first), then drop the socket whatever happened: QUIT
 * on a link that is down resolves at once or times out (commandTimeoutMs), never holding a stop up.
 */
export async function closeRedisClient(client: Redis): Promise<void> {
  await client.quit().catch(() => undefined);
  client.disconnect();
}
