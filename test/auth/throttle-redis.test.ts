import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { startRedis, uniquePrefix, type RedisServer } from '../helpers/redis.js';
import { createRedisThrottleStore } from '../../src/auth/index.js';
import { startAuthRig } from './setup.js';
import { exchange } from './wire.js';

let server: RedisServer;
let client: Redis;
beforeAll(async () => {
  server = await startRedis();
  client = new Redis({ port: server.port, maxRetriesPerRequest: 1 });
});
afterAll(async () => {
  client?.disconnect();
  await server?.close();
});

describe('Redis failure counters', () => {
  it('counts failures per IP and per user, each with a window expiry', async () => {
    const prefix = uniquePrefix('auth');
    const store = createRedisThrottleStore({ client, keyPrefix: prefix });
    expect(await store.counts('192.0.2.1', 'alice')).toEqual({ ip: 0, user: 0 });
    expect(await store.recordFailure('192.0.2.1', 'alice', 60_000)).toEqual({ ip: 1, user: 1 });
    expect(await store.recordFailure('192.0.2.1', 'bob', 60_000)).toEqual({ ip: 2, user: 1 });
    expect(await store.counts('192.0.2.1', 'alice')).toEqual({ ip: 2, user: 1 });
    const ttl = await client.pttl(`${prefix}{auth}:fail:ip:192.0.2.1`);
    expect(ttl).toBeGreaterThan(59_000);
    expect(ttl).toBeLessThanOrEqual(60_000);
    expect(await client.pttl(`${prefix}{auth}:fail:user:alice`)).toBeGreaterThan(0);
  });

  it('forgets failures once the window has passed', async () => {
    const store = createRedisThrottleStore({ client, keyPrefix: uniquePrefix('auth') });
    await store.recordFailure('192.0.2.2', 'alice', 50);
    expect(await store.counts('192.0.2.2', 'alice')).toEqual({ ip: 1, user: 1 });
    const { waitFor } = await import('../helpers/ports.js');
    await waitFor(async () => (await store.counts('192.0.2.2', 'alice')).ip === 0, 2_000, 'expiry');
  });

  it('rejects a bad window with its named error', async () => {
    const store = createRedisThrottleStore({ client, keyPrefix: uniquePrefix('auth') });
    // A non-integer window reaches the script as is only through a direct call; the wrapper rounds.
    await expect((client as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>)
      .sr_recordFailure_v1!('k1{auth}', 'k2{auth}', 'soon')).rejects.toThrow('ERR_BAD_WINDOW');
    expect(await store.recordFailure('192.0.2.3', 'x', 0.2)).toEqual({ ip: 1, user: 1 });
  });

  it('keeps an exact count under many concurrent callers', async () => {
    const store = createRedisThrottleStore({ client, keyPrefix: uniquePrefix('auth') });
    const results = await Promise.all(Array.from({ length: 200 }, (_, i) => store.recordFailure('192.0.2.4', `u${i % 4}`, 60_000)));
    expect(results.map((r) => r.ip).sort((a, b) => a - b)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
    expect(await store.counts('192.0.2.4', 'u0')).toEqual({ ip: 200, user: 50 });
  });

  it('leaves the client open on close(): it is the caller\'s (main.ts shares the directory\'s)', async () => {
    const store = createRedisThrottleStore({ client, keyPrefix: uniquePrefix('auth') });
    await store.close();
    expect(client.status).toBe('ready');
    expect(await client.ping()).toBe('PONG');
  });

  it('recovers after SCRIPT FLUSH (NOSCRIPT path)', async () => {
    const store = createRedisThrottleStore({ client, keyPrefix: uniquePrefix('auth') });
    await store.recordFailure('192.0.2.5', 'alice', 60_000);
    await client.script('FLUSH');
    expect(await store.recordFailure('192.0.2.5', 'alice', 60_000)).toEqual({ ip: 2, user: 2 });
  });
});

describe('auth endpoint with Redis counters', () => {
  it('throttles a client IP across two auth servers sharing one Redis', async () => {
    const keyPrefix = uniquePrefix('auth');
    const one = await startAuthRig({ throttle: { perIp: 2 } }, { throttle: createRedisThrottleStore({ client, keyPrefix }) });
    const two = await startAuthRig({ throttle: { perIp: 2 } }, { throttle: createRedisThrottleStore({ client, keyPrefix }) });
    try {
      expect((await exchange(one.port, { user: 'nobody', clientIp: '198.51.100.3' })).auth).toEqual(['Auth-Status: Invalid login or password', 'Auth-Wait: 3']);
      expect((await exchange(two.port, { user: 'nobody', clientIp: '198.51.100.3' })).auth).toEqual(['Auth-Status: Invalid login or password', 'Auth-Wait: 6']);
      const refused = await exchange(one.port, { user: 'alice', clientIp: '198.51.100.3' });
      expect(refused.auth).toEqual(['Auth-Status: Invalid login or password', 'Auth-Wait: 12']);
      expect((await exchange(two.port, { user: 'alice', clientIp: '198.51.100.4' })).auth[0]).toBe('Auth-Status: OK');
    } finally {
      await one.close();
      await two.close();
    }
  });

  it('fails open (still routes) when Redis is unreachable, and says so in the log', async () => {
    const dead = new Redis({ port: 1, lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null });
    dead.on('error', () => undefined);
    const rig = await startAuthRig({}, { throttle: createRedisThrottleStore({ client: dead, keyPrefix: uniquePrefix('auth') }) });
    try {
      expect((await exchange(rig.port, { user: 'alice' })).auth[0]).toBe('Auth-Status: OK');
      expect((await exchange(rig.port, { user: 'nobody' })).auth).toEqual(['Auth-Status: Invalid login or password', 'Auth-Wait: 3']);
      expect(rig.logs.filter((l) => l.msg === 'auth_throttle_unavailable').length).toBeGreaterThanOrEqual(2);
    } finally {
      await rig.close();
      dead.disconnect();
    }
  });
});
