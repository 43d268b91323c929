/**
 * The read cache when the network path to Redis dies silently (no FIN, no RST), through a proxy
 * that stops forwarding without closing: the cache must stop answering within the liveness check
 * interval (commandTimeoutMs), lookups must never return the pre-failover route after that, and
 * everything must come back by itself once a fresh connection works.
 */
import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/index.js';
import { CachedDirectory, createDirectory, DirectoryUnavailableError, directoryKeys, type Directory } from '../../src/directory/index.js';
import { startRedis, uniquePrefix, type RedisServer } from '../helpers/redis.js';
import { waitFor } from '../helpers/ports.js';
import { testLogger, testRegistry } from '../helpers/logger.js';
import { seedLayout } from './behaviour.js';
import { startBlackholeProxy, type BlackholeProxy } from './blackhole-proxy.js';

const CHECK_MS = 300;

describe('directory read cache over a silently dying connection', () => {
  let redis: RedisServer;
  let proxy: BlackholeProxy;
  let prefix: string;
  let opened: Directory[];
  beforeEach(async () => {
    redis = await startRedis();
    proxy = await startBlackholeProxy(redis.port);
    prefix = uniquePrefix('live');
    opened = [];
  });
  afterEach(async () => {
    for (const d of opened) await d.close();
    await proxy.close();
    await redis.close();
  });

  async function open(url: string): Promise<CachedDirectory> {
    const d = await createDirectory(parseConfig({ directory: { backend: 'redis',
      redis: { url, keyPrefix: prefix, commandTimeoutMs: CHECK_MS, connectTimeoutMs: 500 } } }).directory,
    { logger: testLogger(), metrics: testRegistry() });
    opened.push(d);
    const c = d as CachedDirectory;
    await waitFor(() => c.cacheLive, 5_000, 'the change feed to be live');
    return c;
  }

  /** `a` behind the proxy with alice cached on slot101; `writer` straight to Redis. */
  async function setup(): Promise<{ a: CachedDirectory; writer: CachedDirectory }> {
    const writer = await open(redis.url);
    const a = await open(`redis://127.0.0.1:${proxy.port}`);
    let seen = 0;
    a.onChange((e) => { seen = Math.max(seen, e.version); });
    await seedLayout(writer);
    // Let a's feed catch up first: a late echo of the seeding would empty the cache by itself.
    const version = await writer.version();
    await waitFor(() => seen === version, 2_000, 'a\'s feed to catch up');
    await waitFor(async () => { await a.resolve('alice'); return a.cacheSize === 1; }, 2_000, 'alice to be cached');
    return { a, writer };
  }

  it('bypasses the cache within the check interval when only the subscriber goes silent, then recovers', async () => {
    const { a, writer } = await setup();
    expect(proxy.blackhole((c) => c.sent.includes('storeroute:directory-sub'))).toBe(1);
    await writer.failover('store1', {}, 'test'); // its invalidation never reaches a
    const cut = Date.now();
    await waitFor(() => !a.cacheLive, 3 * CHECK_MS + 500, 'the cache to stop trusting the feed');
    expect(Date.now() - cut).toBeLessThan(3 * CHECK_MS + 500);
    expect(a.cacheSize).toBe(0);
    expect((await a.resolve('alice'))?.master.name).toBe('slot201');
    // A fresh subscriber connection (the proxy forwards new ones) makes the cache trusted again.
    await waitFor(() => a.cacheLive, 5_000, 'the feed to come back');
    expect((await a.resolve('alice'))?.master.name).toBe('slot201');
    await writer.failover('store1', { to: 'slot101' }, 'test');
    await waitFor(async () => (await a.resolve('alice'))?.master.name === 'slot101', 2_000, 'the next invalidation to arrive');
  }, 20_000);

  it('never answers the stale route once both connections go silent, and comes back by itself', async () => {
    const { a, writer } = await setup();
    expect(proxy.blackhole(() => true)).toBe(2);
    await writer.failover('store1', {}, 'test');
    await waitFor(() => !a.cacheLive, 3 * CHECK_MS + 500, 'the cache to stop trusting the feed');
    const seen = new Set<string>();
    await waitFor(async () => {
      try {
        seen.add((await a.resolve('alice'))?.master.name ?? 'null');
      } catch (err) {
        expect(err).toBeInstanceOf(DirectoryUnavailableError);
        seen.add('unavailable');
      }
      return seen.has('slot201');
    }, 10_000, 'lookups to work again over fresh connections');
    expect(seen.has('slot101')).toBe(false);
    await waitFor(() => a.cacheLive, 5_000, 'the feed to come back');
  }, 30_000);

  it('empties the cache when the feed is up but an invalidation was missed (version ahead of the feed)', async () => {
    const { a } = await setup();
    // A version bump nobody published: what a lost message looks like from here.
    const raw = new Redis(redis.url);
    try {
      await raw.incr(directoryKeys(prefix).version);
    } finally {
      raw.disconnect();
    }
    await waitFor(() => a.cacheSize === 0, 3 * CHECK_MS + 500, 'the cache to be emptied');
    await waitFor(() => a.cacheLive, 5_000, 'the feed to be trusted again');
  }, 20_000);
});
