/**
 * A serving storeroute on a Redis directory (LMTP, auth_http with its throttle, admin API with the
 * instance heartbeat) opens exactly two Redis connections: the command connection main.ts opens and
 * lends to the directory, the throttle and the heartbeat, and the directory's subscriber (a
 * connection in SUBSCRIBE mode cannot be shared). Counted with CLIENT LIST by their names
 * (`storeroute:*`); both are closed on stop. The keys it touches (seen with MONITOR) are all
 * built by core/redis-keys.ts, and every Lua script is registered as `sr_<name>_v<N>`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { loadConfig, type Config } from '../src/config/index.js';
import { startStoreroute, type Running } from '../src/main.js';
import { applyDirectory, closeRedisClient, createRedisClient, RedisDirectory } from '../src/directory/index.js';
import { createRedisThrottleStore } from '../src/auth/index.js';
import { redisKeys } from '../src/core/redis-keys.js';
import { lmtpExchange } from './helpers/example-config.js';
import { testLogger, testRegistry } from './helpers/logger.js';
import { startRedis, uniquePrefix, type RedisServer } from './helpers/redis.js';
import { waitFor } from './helpers/ports.js';
import { exchange } from './auth/wire.js';

const LAYOUT = new URL('../config/directory.example.yaml', import.meta.url).pathname;
const SECRET = { 'X-Storeroute-Secret': 'change-me-before-production' };
const obs = () => ({ logger: testLogger(), metrics: testRegistry() });

let redis: RedisServer;
let observer: Redis;
beforeAll(async () => {
  redis = await startRedis();
  observer = new Redis(redis.port, { connectionName: 'test-observer' });
  observer.on('error', () => undefined); // one test stops Redis under it
});
afterAll(async () => {
  observer.disconnect();
  await redis.close();
});

/** The example configuration on a Redis directory, free ports, its journal in a temp dir. */
function redisConfig(keyPrefix: string): Config {
  const dir = mkdtempSync(join(tmpdir(), 'sr-sharing-'));
  const config = loadConfig(new URL('../config/storeroute.example.yaml', import.meta.url).pathname);
  config.directory.backend = 'redis';
  config.directory.redis.url = redis.url;
  config.directory.redis.keyPrefix = keyPrefix;
  config.directory.redis.connectTimeoutMs = 500;
  config.journal.dir = join(dir, 'journal');
  config.lmtp.listen = { host: '127.0.0.1', port: 0 };
  config.auth.listen.port = 0;
  config.admin.listen.port = 0;
  config.admin.token = 'sharing-test-token-0123456789abcdef';
  config.admin.instanceName = 'sharing-test';
  return config;
}

/** The names of storeroute's connections to this Redis (CLIENT SETNAME storeroute:<role>), sorted. */
async function storerouteConnections(): Promise<string[]> {
  const list = await observer.client('LIST') as string;
  return list.split('\n').map((line) => /\bname=(\S*)/.exec(line)?.[1] ?? '').filter((n) => n.startsWith('storeroute:')).sort();
}

async function applyLayout(config: Config, patchLimit?: number): Promise<void> {
  const writer = await RedisDirectory.open(config.directory.redis, obs(), undefined, patchLimit ? { patchLimit } : {});
  try {
    await applyDirectory(writer, LAYOUT, { actor: 'test' });
  } finally {
    await writer.close();
  }
}

describe('Redis connections of a serving storeroute', () => {
  it('are two, command (shared by the directory, the auth throttle and the heartbeat) and the subscriber, both closed on stop', async () => {
    const prefix = uniquePrefix('share');
    const config = redisConfig(prefix);
    const keys = redisKeys(prefix);
    await applyLayout(config);
    await waitFor(async () => (await storerouteConnections()).length === 0, 5_000, 'the writer\'s connections closed');

    const running = await startStoreroute(config, testLogger());
    try {
      // Every borrower has used the connection: the heartbeat wrote, the throttle counted, the directory resolved.
      await waitFor(() => observer.hget(keys.instances, 'sharing-test'), 5_000, 'heartbeat entry');
      const refused = await exchange(running.auth!.port, { user: 'nobody', clientIp: '198.51.100.9', extra: SECRET });
      expect(refused.auth[0]).toBe('Auth-Status: Invalid login or password');
      expect(await observer.get(keys.authThrottle.ip('198.51.100.9'))).toBe('1');
      expect((await exchange(running.auth!.port, { user: 'alice', clientIp: '198.51.100.10', extra: SECRET })).auth[0]).toBe('Auth-Status: OK');

      expect(await storerouteConnections()).toEqual(['storeroute:command', 'storeroute:directory-sub']);
    } finally {
      await running.stop();
    }
    // Each closed once by its owner: main.ts the command connection, the directory its subscriber.
    await waitFor(async () => (await storerouteConnections()).length === 0, 2_000, 'no storeroute connection left');
    expect(await observer.hexists(keys.instances, 'sharing-test')).toBe(0);
  });

  it('starts while Redis is down (lookups answer unavailable, nothing crashes) and opens the same two once it is up', async () => {
    const config = redisConfig(uniquePrefix('share-down'));
    config.admin.heartbeatMs = 200; // Redis comes back empty: the next beat re-registers soon
    await redis.stop();
    let running: Running;
    try {
      running = await startStoreroute(config, testLogger());
      const lmtp = await lmtpExchange(running.lmtp!.port!, ['LHLO test', 'MAIL FROM:<a@example.org>', 'RCPT TO:<alice@example.org>', 'QUIT']);
      expect(lmtp).toMatch(/^451 /m);
      // Directory down: auth holds the login (a temporary answer), never "invalid" and never OK.
      const held = await exchange(running.auth!.port, { user: 'alice', clientIp: '198.51.100.11', extra: SECRET });
      expect(held.auth[0]).not.toBe('Auth-Status: Invalid login or password');
      expect(held.auth[0]).not.toBe('Auth-Status: OK');
      expect((await fetch(`${running.admin!.url}/readyz`)).status).toBe(503);
    } finally {
      await redis.start();
    }
    try {
      await applyLayout(config); // this redis-server keeps nothing on disk
      await waitFor(async () => (await fetch(`${running.admin!.url}/readyz`)).status === 200, 10_000, 'ready once Redis is up');
      await waitFor(() => observer.hget(redisKeys(config.directory.redis.keyPrefix).instances, 'sharing-test'), 10_000, 'heartbeat entry');
      expect(await storerouteConnections()).toEqual(['storeroute:command', 'storeroute:directory-sub']);
    } finally {
      await running.stop();
    }
    await waitFor(async () => (await storerouteConnections()).length === 0, 2_000, 'no storeroute connection left');
  }, 30_000);
});

describe('the Redis layout a serving storeroute uses', () => {
  it('touches only keys and channels built by core/redis-keys.ts', async () => {
    const prefix = uniquePrefix('layout');
    const config = redisConfig(prefix);
    const monitor = await observer.monitor();
    const seen = new Set<string>();
    monitor.on('monitor', (_time: string, args: string[]) => {
      for (const a of args) if (a.startsWith(prefix)) seen.add(a);
    });
    try {
      // Staged tables (patchLimit 1) and the commit that swaps them in, then a serving process.
      await applyLayout(config, 1);
      const running = await startStoreroute(config, testLogger());
      try {
        await waitFor(() => observer.hget(`${prefix}{instances}`, 'sharing-test'), 5_000, 'heartbeat entry');
        await exchange(running.auth!.port, { user: 'nobody', clientIp: '198.51.100.12', extra: SECRET });
        await exchange(running.auth!.port, { user: 'alice', clientIp: '198.51.100.12', extra: SECRET });
        await fetch(`${running.admin!.url}/readyz`);
        await running.directory.snapshot();
        await running.directory.setUserState('carol', 'suspended', 'test');
      } finally {
        await running.stop();
      }
    } finally {
      await monitor.quit().catch(() => monitor.disconnect());
    }

    const k = redisKeys(prefix);
    const built = new Set([...k.directory.mutation, k.directory.channel, k.instances,
      k.authThrottle.ip('198.51.100.12'), k.authThrottle.user('nobody'), k.authThrottle.user('alice')]);
    for (const key of seen) {
      const token = /\{dir\}:apply:([^:]+):/.exec(key)?.[1];
      if (token) for (const staged of Object.values(k.directory.staging(token))) built.add(staged);
    }
    expect([...seen].filter((key) => !built.has(key))).toEqual([]);
    // What the run was meant to exercise did happen.
    expect([...seen].some((key) => key.includes('{dir}:apply:'))).toBe(true);
    for (const key of [k.directory.users, k.directory.channel, k.instances, k.authThrottle.ip('198.51.100.12')]) expect(seen).toContain(key);
  });
});

describe('Lua scripts', () => {
  it('all register under sr_<name>_v<N>, the directory\'s and auth\'s on one shared client', async () => {
    const prefix = uniquePrefix('scripts');
    const config = redisConfig(prefix).directory.redis;
    const client = createRedisClient(config, obs(), { role: 'scripts-test' });
    const dir = await RedisDirectory.open(config, obs(), undefined, { client });
    try {
      const throttle = createRedisThrottleStore({ client, keyPrefix: prefix });
      const names = Object.keys((client as unknown as { scriptsSet: Record<string, unknown> }).scriptsSet).sort();
      expect(names).toEqual([
        'sr_abortMove_v4', 'sr_beginMove_v4', 'sr_commit_v4', 'sr_createSlot_v4', 'sr_createStore_v4', 'sr_createUser_v4',
        'sr_deleteSlot_v4', 'sr_deleteStore_v4', 'sr_deleteUser_v4', 'sr_failover_v4', 'sr_finishMove_v4', 'sr_recordFailure_v1',
        'sr_resolve_v4', 'sr_setPasswordHash_v4', 'sr_setSlotState_v4', 'sr_setStoreState_v4', 'sr_setUserState_v4',
        'sr_updateSlot_v4', 'sr_updateStore_v4',
      ]);
      for (const name of names) expect(name).toMatch(/^sr_[a-z][A-Za-z0-9]*_v[1-9][0-9]*$/);
      // Both work through the shared client, and closing the directory leaves the client to its owner.
      await dir.createSlot({ name: 'slot1', machine: 'm1', ip: '127.0.9.1' }, 'test');
      expect(await throttle.recordFailure('192.0.2.9', 'x', 60_000)).toEqual({ ip: 1, user: 1 });
      await throttle.close();
      await dir.close();
      expect(await client.get(redisKeys(prefix).directory.version)).toBe('1');
    } finally {
      await dir.close();
      await closeRedisClient(client);
    }
  });
});
