/** The Redis backend reached through a real Sentinel (createRedisClient's Sentinel mode). */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/index.js';
import { createDirectory, DirectoryUnavailableError } from '../../src/directory/index.js';
import { startRedis, uniquePrefix, type RedisServer } from '../helpers/redis.js';
import { freePort, waitFor } from '../helpers/ports.js';
import { testLogger, testRegistry } from '../helpers/logger.js';
import { seedLayout } from './behaviour.js';

const SENTINEL_PASSWORD = 'sentinel-only-secret';

interface Sentinel { port: number; child: ChildProcess }

/** A redis-sentinel monitoring `redisPort` as master "storeroute", optionally with its own password. */
async function startSentinel(dir: string, redisPort: number, password?: string): Promise<Sentinel> {
  const port = await freePort();
  const conf = join(dir, `sentinel-${port}.conf`);
  await writeFile(conf, `port ${port}\nbind 127.0.0.1\nprotected-mode no\ndir ${dir}\n`
    + `sentinel monitor storeroute 127.0.0.1 ${redisPort} 1\nsentinel down-after-milliseconds storeroute 5000\n`
    + (password ? `requirepass ${password}\n` : ''));
  const child = spawn('redis-server', [conf, '--sentinel'], { stdio: 'ignore' });
  await waitFor(async () => {
    const probe = new Redis({ port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null,
      ...(password ? { password } : {}) });
    probe.on('error', () => undefined);
    try {
      await probe.connect();
      const addr = await probe.call('SENTINEL', 'get-master-addr-by-name', 'storeroute') as string[] | null;
      return addr?.[1] === String(redisPort);
    } finally {
      probe.disconnect();
    }
  }, 10_000, 'sentinel to know the master');
  return { port, child };
}

describe('directory through Redis Sentinel', () => {
  let redis: RedisServer;
  let open: Sentinel;
  let locked: Sentinel;
  let tmp: string;
  beforeAll(async () => {
    redis = await startRedis();
    tmp = await mkdtemp(join(tmpdir(), 'sr-sentinel-'));
    [open, locked] = await Promise.all([startSentinel(tmp, redis.port), startSentinel(tmp, redis.port, SENTINEL_PASSWORD)]);
  });
  afterAll(async () => {
    for (const s of [open, locked]) {
      if (!s) continue;
      const exited = new Promise((r) => s.child.once('exit', r));
      s.child.kill('SIGKILL');
      await exited;
    }
    await redis.close();
    await rm(tmp, { recursive: true, force: true });
  });

  const obs = () => ({ logger: testLogger(), metrics: testRegistry() });
  const configFor = (sentinel: Sentinel, extra: Record<string, unknown> = {}) => parseConfig({ directory: { backend: 'redis',
    redis: { sentinels: [{ host: '127.0.0.1', port: sentinel.port }], masterName: 'storeroute', keyPrefix: uniquePrefix('sentinel'),
      ...extra } } }).directory;

  it('finds the master through Sentinel, mutates, resolves and receives invalidations', async () => {
    const config = configFor(open);
    const a = await createDirectory(config, obs());
    const b = await createDirectory(config, obs());
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

  it('authenticates to password-protected Sentinels with sentinelPassword (and only to them)', async () => {
    const d = await createDirectory(configFor(locked, { sentinelPassword: SENTINEL_PASSWORD }), obs());
    try {
      await seedLayout(d);
      expect((await d.resolve('alice'))?.master.name).toBe('slot101');
    } finally {
      await d.close();
    }
  });

  it('without sentinelPassword, protected Sentinels give DirectoryUnavailableError, never "unknown user"', async () => {
    const d = await createDirectory(configFor(locked, { commandTimeoutMs: 300, connectTimeoutMs: 300 }), obs());
    try {
      await expect(d.resolve('alice')).rejects.toBeInstanceOf(DirectoryUnavailableError);
    } finally {
      await d.close();
    }
  });
});
