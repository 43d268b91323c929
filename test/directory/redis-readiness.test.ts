/**
 * Directory.readiness() on Redis (what /readyz reports): not ready while Redis holds no layout,
 * while it is unreachable, or while the invalidation feed is down; ready again by itself. Cheap:
 * it never reads a whole table.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/index.js';
import { createDirectory } from '../../src/directory/index.js';
import { startRedis, uniquePrefix, type RedisServer } from '../helpers/redis.js';
import { waitFor } from '../helpers/ports.js';
import { testLogger, testRegistry } from '../helpers/logger.js';
import { seedLayout } from './behaviour.js';

describe('Redis directory readiness', () => {
  let redis: RedisServer;
  beforeAll(async () => { redis = await startRedis(); });
  afterAll(async () => { await redis.close(); });

  it('is not ready without a layout, ready with one, not ready while Redis is down, and not ready when it comes back empty', async () => {
    const dir = await createDirectory(parseConfig({ directory: { backend: 'redis', redis: { url: redis.url,
      keyPrefix: uniquePrefix('ready'), commandTimeoutMs: 300, connectTimeoutMs: 500 } } }).directory,
    { logger: testLogger(), metrics: testRegistry() });
    try {
      const empty = await dir.readiness();
      expect(empty.ok).toBe(false);
      expect(empty.problems).toEqual([expect.stringMatching(/^Redis holds no directory layout \(no version key/)]);

      await dir.createSlot({ name: 'slot101', machine: 'imap1', ip: '127.0.1.1' }, 'test');
      expect((await dir.readiness()).problems).toEqual(['Redis holds no directory layout (version 1: 0 stores, 1 slots)']);

      await dir.deleteSlot('slot101', 'test');
      await seedLayout(dir);
      const raw = new Redis(redis.url);
      try {
        await raw.config('RESETSTAT');
        for (let i = 0; i < 10; i++) expect(await dir.readiness()).toEqual({ ok: true, problems: [] });
        const stats = await raw.info('commandstats');
        expect(stats).not.toMatch(/cmdstat_(hgetall|hscan|hvals|hkeys|keys|scan|evalsha|eval):/);
      } finally {
        raw.disconnect();
      }

      await redis.stop(true);
      const down = await waitFor(async () => {
        const r = await dir.readiness();
        return r.problems.length === 2 ? r : null;
      }, 5_000, 'both problems while Redis is down');
      expect(down.ok).toBe(false);
      expect(down.problems[0]).toMatch(/^the invalidation feed \(pub\/sub\) is not live/);
      expect(down.problems[1]).toMatch(/^Redis is unreachable/);

      // This redis-server keeps nothing: it comes back empty, which is reachable but not ready.
      await redis.start();
      const back = await waitFor(async () => {
        const r = await dir.readiness();
        return r.problems.length === 1 ? r : null;
      }, 10_000, 'the feed to be live again');
      expect(back.problems[0]).toMatch(/no directory layout/);
    } finally {
      await dir.close();
    }
  }, 30_000);
});
