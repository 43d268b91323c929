import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { fileLeases, leaseKey, redisLeases, type LeaseStore } from '../../src/failover/index.js';
import { startRedis, uniquePrefix, type RedisServer } from '../helpers/redis.js';

let server: RedisServer;
let redis: Redis;
let dir: string;
beforeAll(async () => {
  server = await startRedis();
  redis = new Redis({ port: server.port, host: '127.0.0.1' });
  dir = mkdtempSync(join(tmpdir(), 'storeroute-lease-'));
});
afterAll(async () => {
  redis.disconnect();
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

async function oneWinner(leases: LeaseStore, store: string) {
  const got = await Promise.all(Array.from({ length: 12 }, (_, i) => leases.acquire(store, `runner-${i}`, 60_000)));
  const winners = got.filter((g) => 'lease' in g);
  expect(winners).toHaveLength(1);
  for (const g of got) if ('heldBy' in g) expect(g.heldBy?.token).toBe(('lease' in winners[0]! ? winners[0].lease : null)!.holder.token);
  return winners[0] as { lease: { release(): Promise<void> } };
}

describe.each([
  ['file', () => fileLeases(dir)],
  ['redis', () => redisLeases(redis, uniquePrefix('lease'))],
])('%s leases', (_kind, make) => {
  it('many concurrent runners: exactly one holds the lease; after release the next one gets it', async () => {
    const leases = make();
    const w = await oneWinner(leases, 'A');
    await w.lease.release();
    const next = await oneWinner(leases, 'A');
    await next.lease.release();
  });

  it("a lease that expired is taken over; releasing an old lease does not drop the new holder's", async () => {
    const leases = make();
    const old = await leases.acquire('B', 'dead', 200);
    expect('lease' in old).toBe(true);
    await new Promise((r) => setTimeout(r, 300));
    const now = await leases.acquire('B', 'alive', 60_000);
    expect('lease' in now).toBe(true);
    if ('lease' in old) await old.lease.release();
    expect('heldBy' in await leases.acquire('B', 'third', 60_000)).toBe(true);
  });
});

it('a file lease whose runner died on this host is taken over at once', async () => {
  const leases = fileLeases(dir);
  writeFileSync(join(dir, '.failover-C.lease'), JSON.stringify({ holder: 'x', host: (await import('node:os')).hostname(), pid: 2 ** 22 + 7, token: 't', expiresAt: Date.now() + 60_000 }));
  expect('lease' in await leases.acquire('C', 'me', 60_000)).toBe(true);
});

it('Redis: an old holder releasing while a new runner takes the expired lease never drops the new lease (200 races)', async () => {
  const prefix = uniquePrefix('lease-race');
  const leases = redisLeases(redis, prefix);
  for (let i = 0; i < 200; i++) {
    const old = await leases.acquire(`S${i}`, 'old', 60_000);
    if (!('lease' in old)) throw new Error('no lease');
    await redis.pexpire(leaseKey(prefix, `S${i}`), 1); // it expires now, as a dead runner's would
    while (await redis.exists(leaseKey(prefix, `S${i}`))) await new Promise((r) => setTimeout(r, 1));
    const [got] = await Promise.all([leases.acquire(`S${i}`, 'new', 60_000), old.lease.release()]);
    expect('lease' in got).toBe(true);
    expect(JSON.parse((await redis.get(leaseKey(prefix, `S${i}`)))!)).toMatchObject({ holder: 'new' });
  }
  // Registered the one way every script is: sr_<name>_v<N>.
  expect(typeof (redis as unknown as Record<string, unknown>).sr_releaseLease_v1).toBe('function');
});

it('the Redis lease key carries the prefix', () => {
  expect(leaseKey('sr:', 'A')).toBe('sr:failover:lease:A');
});
