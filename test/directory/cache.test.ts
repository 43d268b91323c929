/**
 * The read cache against a real redis-server that stops, restarts and drops subscribers: it must
 * never answer from an entry older than a mutation it could have missed.
 */
import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/index.js';
import {
  CachedDirectory, createDirectory, DirectoryUnavailableError, type Directory,
} from '../../src/directory/index.js';
import { startRedis, uniquePrefix, type RedisServer } from '../helpers/redis.js';
import { waitFor } from '../helpers/ports.js';
import { testLogger, testRegistry } from '../helpers/logger.js';
import { seedLayout } from './behaviour.js';

describe('directory read cache over Redis', () => {
  let redis: RedisServer;
  let prefix: string;
  let opened: Directory[];
  beforeEach(async () => {
    redis = await startRedis();
    prefix = uniquePrefix('cache');
    opened = [];
  });
  afterEach(async () => {
    for (const d of opened) await d.close();
    await redis.close();
  });

  async function open(metrics = testRegistry()): Promise<CachedDirectory> {
    const d = await createDirectory(parseConfig({ directory: { backend: 'redis',
      redis: { url: redis.url, keyPrefix: prefix, commandTimeoutMs: 300, connectTimeoutMs: 500 } } }).directory,
    { logger: testLogger(), metrics });
    opened.push(d);
    expect(d).toBeInstanceOf(CachedDirectory);
    const c = d as CachedDirectory;
    await waitFor(() => c.cacheLive, 5_000, 'the change feed to be live');
    return c;
  }

  async function metricValue(metrics: ReturnType<typeof testRegistry>, name: string): Promise<number> {
    const json = await metrics.getMetricsAsJSON();
    return (json.find((m) => m.name === name)?.values[0]?.value as number | undefined) ?? NaN;
  }

  it('serves repeated lookups from memory, counting hits and misses', async () => {
    const metrics = testRegistry();
    const a = await open(metrics);
    let seen = 0;
    a.onChange((e) => { seen = e.version; });
    await seedLayout(a);
    // Our own mutations echo back through the feed and (correctly) drop entries: let them land.
    const version = await a.version();
    await waitFor(() => seen === version, 2_000, 'the feed to catch up');
    await a.resolve('alice');
    await a.resolve('alice');
    await a.resolve('Alice');
    expect(await metricValue(metrics, 'storeroute_directory_cache_hits_total')).toBe(2);
    expect(await metricValue(metrics, 'storeroute_directory_cache_misses_total')).toBe(1);
  });

  it('drops an entry when another process mutates it, including a cached "no such user"', async () => {
    const a = await open();
    const b = await open();
    await seedLayout(b);
    expect(await a.resolve('carol')).toBeNull();
    expect(await a.resolve('carol')).toBeNull();
    expect(a.cacheSize).toBe(1);
    await b.createUser({ name: 'carol', store: 'store1' }, 'test');
    await waitFor(async () => (await a.resolve('carol'))?.master.name === 'slot101', 2_000, 'carol to appear');
    expect((await a.resolve('alice'))?.master.name).toBe('slot101');
    await b.failover('store1', {}, 'test');
    await waitFor(async () => (await a.resolve('alice'))?.master.name === 'slot201', 2_000, 'failover to be seen');
  });

  it('answers DirectoryUnavailableError, never a cached or null answer, while Redis is down', async () => {
    const metrics = testRegistry();
    const a = await open(metrics);
    await seedLayout(a);
    expect((await a.resolve('alice'))?.master.name).toBe('slot101');
    await redis.stop(true);
    await waitFor(() => !a.cacheLive, 2_000, 'the cache to notice');
    await expect(a.resolve('alice')).rejects.toBeInstanceOf(DirectoryUnavailableError);
    await expect(a.resolve('nobody')).rejects.toBeInstanceOf(DirectoryUnavailableError);
    expect(await metricValue(metrics, 'storeroute_directory_lookup_errors_total')).toBe(2);
  });

  it('after a Redis restart and a mutation made before it re-subscribed, never answers the stale route', async () => {
    const a = await open();
    await seedLayout(a);
    expect((await a.resolve('alice'))?.master.name).toBe('slot101');
    expect((await a.resolve('alice'))?.master.name).toBe('slot101'); // now cached
    await redis.stop(true);
    await redis.start();
    // Another client rebuilds the directory (no persistence) with alice's store on slot201,
    // racing a's reconnect: a's subscriber may well miss every one of these messages.
    const b = new Redis(redis.url);
    const writer = await open();
    try {
      await seedLayout(writer);
      await writer.failover('store1', {}, 'test');
    } finally {
      b.disconnect();
    }
    const seen = new Set<string>();
    const until = Date.now() + 1_500;
    while (Date.now() < until) {
      try {
        const r = await a.resolve('alice');
        seen.add(r?.master.name ?? 'null');
      } catch (err) {
        expect(err).toBeInstanceOf(DirectoryUnavailableError);
        seen.add('unavailable');
      }
    }
    expect(seen.has('slot101')).toBe(false);
    expect(seen.has('slot201')).toBe(true);
    await waitFor(() => a.cacheLive, 3_000, 'the cache to be trusted again');
    expect((await a.resolve('alice'))?.master.name).toBe('slot201');
  });

  it('when only the subscriber connection is killed, bypasses the cache until re-subscribed', async () => {
    const a = await open();
    const b = await open();
    await seedLayout(b);
    expect((await a.resolve('alice'))?.master.name).toBe('slot101');
    const admin = new Redis(redis.url);
    try {
      await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
      await waitFor(() => !a.cacheLive, 2_000, 'the cache to notice the dropped subscriber');
      // Published now, while a's subscriber is away: lost for a.
      await b.failover('store1', {}, 'test');
      expect((await a.resolve('alice'))?.master.name).toBe('slot201');
      await waitFor(() => a.cacheLive, 3_000, 're-subscription');
      expect((await a.resolve('alice'))?.master.name).toBe('slot201');
    } finally {
      admin.disconnect();
    }
  });
});
