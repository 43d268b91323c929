/** The Redis backend reached through a real Sentinel (createRedisClient's Sentinel mode). */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/index.js';
import { createDirectory } from '../../src/directory/index.js';
import { startRedis, uniquePrefix, type RedisServer } from '../helpers/redis.js';
import { freePort, waitFor } from '../helpers/ports.js';
import { testLogger, testRegistry } from '../helpers/logger.js';
import { seedLayout } from './behaviour.js';

describe('directory through Redis Sentinel', () => {
  let redis: RedisServer;
  let sentinel: ChildProcess;
  let sentinelPort: number;
  let tmp: string;
  beforeAll(async () => {
    redis = await startRedis();
    tmp = await mkdtemp(join(tmpdir(), 'sr-sentinel-'));
    sentinelPort = await freePort();
    const conf = join(tmp, 'sentinel.conf');
    await writeFile(conf, `port ${sentinelPort}\nbind 127.0.0.1\nprotected-mode no\ndir ${tmp}\n`
      + `sentinel monitor storeroute 127.0.0.1 ${redis.port} 1\nsentinel down-after-milliseconds storeroute 5000\n`);
    sentinel = spawn('redis-server', [conf, '--sentinel'], { stdio: 'ignore' });
    await waitFor(async () => {
      const probe = new Redis({ port: sentinelPort, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      probe.on('error', () => undefined);
      try {
        await probe.connect();
        const addr = await probe.call('SENTINEL', 'get-master-addr-by-name', 'storeroute') as string[] | null;
        return addr?.[1] === String(redis.port);
      } finally {
        probe.disconnect();
      }
    }, 10_000, 'sentinel to know the master');
  });
  afterAll(async () => {
    const exited = new Promise((r) => sentinel.once('exit', r));
    sentinel.kill('SIGKILL');
    await exited;
    await redis.close();
    await rm(tmp, { recursive: true, force: true });
  });

  it('finds the master through Sentinel, mutates, resolves and receives invalidations', async () => {
    const config = parseConfig({ directory: { backend: 'redis', redis: { sentinels: [{ host: '127.0.0.1', port: sentinelPort }],
      masterName: 'storeroute', keyPrefix: uniquePrefix('sentinel') } } });
    const obs = () => ({ logger: testLogger(), metrics: testRegistry() });
    const a = await createDirectory(config.directory, obs());
    const b = await createDirectory(config.directory, obs());
    try {
      await seedLayout(a);
      expect((await b.resolve('alice'))?.master.name).toBe('slot101');
      await a.failover('store1', {}, 'test');
      await waitFor(async () => (await b.resolve('alice'))?.master.name === 'slot201', 2_000, 'b to see the failover');
    } finally {
      await a.close();
      await b.close();
    }
  });
});
