import { afterAll, beforeAll } from 'vitest';
import { parseConfig } from '../../src/config/index.js';
import { createDirectory } from '../../src/directory/index.js';
import { startRedis, uniquePrefix, type RedisServer } from '../helpers/redis.js';
import { testLogger, testRegistry } from '../helpers/logger.js';
import { behaviourSuite } from './behaviour.js';

let redis: RedisServer;
beforeAll(async () => { redis = await startRedis(); });
afterAll(async () => { await redis.close(); });

for (const cached of [true, false]) behaviourSuite(cached ? 'redis + cache' : 'redis, no cache', async () => {
  const config = parseConfig({ directory: { backend: 'redis', redis: { url: redis.url, keyPrefix: uniquePrefix('dir') },
    cache: { enabled: cached } } });
  const open = () => createDirectory(config.directory, { logger: testLogger(), metrics: testRegistry() });
  const dir = await open();
  return { dir, other: open, cleanup: () => dir.close() };
});
