/** The CLI (in-process) on the Redis directory: the same commands, a real redis-server, one key prefix per test. */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cli, fixture, redisSite } from './harness.js';
import { startRedis, uniquePrefix, type RedisServer } from '../helpers/redis.js';
import { freePort } from '../helpers/ports.js';

describe('storeroute CLI on the Redis directory (in-process)', () => {
  let redis: RedisServer;
  beforeAll(async () => { redis = await startRedis(); });
  afterAll(async () => { await redis?.close(); });

  async function site() {
    const s = redisSite(redis.url, uniquePrefix('cli'));
    const run = (...args: string[]) => cli(['--config', s.config, '--actor', 'redis-test', ...args]);
    const applied = await run('directory', 'apply', fixture('two-stores.yaml'));
    expect(applied.stderr).toBe('');
    expect(applied.code).toBe(0);
    return { ...s, run };
  }

  it('export round-trips: re-applying the exported file changes nothing', async () => {
    const { dir, run } = await site();
    expect((await run('store', 'failover', 'store2', '--to', 'slot301')).code).toBe(0);
    const exported = await run('directory', 'export');
    const file = join(dir, 'exported.yaml');
    writeFileSync(file, exported.stdout);
    const reapply = await run('directory', 'apply', file);
    expect(reapply.code).toBe(0);
    expect(reapply.stdout).toMatch(/^no changes: the directory \(version 11\) already matches /);
  });

  it('export while Redis is down: -o leaves the file as it was, and the empty file `>` leaves is refused by apply (issue 11)', async () => {
    const { dir, run } = await site();
    const out = join(dir, 'layout.yaml');
    expect((await run('directory', 'export', '-o', out)).code).toBe(0);
    const good = readFileSync(out, 'utf8');
    const down = redisSite(`redis://127.0.0.1:${await freePort()}`, uniquePrefix('down'));
    writeFileSync(down.config, readFileSync(down.config, 'utf8').replace('keyPrefix:', 'connectTimeoutMs: 200, keyPrefix:'));
    const failed = await cli(['--config', down.config, 'directory', 'export', '-o', out]);
    expect(failed.code).toBe(75);
    expect(readFileSync(out, 'utf8')).toBe(good);
    const fresh = join(dir, 'never.yaml');
    expect((await cli(['--config', down.config, 'directory', 'export', '-o', fresh])).code).toBe(75);
    expect(existsSync(fresh)).toBe(false);

    // What `directory export > layout.yaml` leaves behind when Redis is down: a 0-byte file.
    const truncated = join(dir, 'truncated.yaml');
    writeFileSync(truncated, '');
    const before = (await run('directory', 'export', '--format', 'json')).stdout;
    const refused = await run('directory', 'apply', '--prune', '--force', truncated);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('the file is empty');
    expect((await run('directory', 'export', '--format', 'json')).stdout).toBe(before);
  });

  it('failover CAS, set-state, status and history', async () => {
    const { run } = await site();
    expect((await run('store', 'failover', 'store2', '--to', 'slot301', '--expect-epoch', '0')).code).toBe(0);
    const stale = await run('store', 'failover', 'store2', '--to', 'slot102', '--expect-epoch', '0');
    expect(stale.code).toBe(1);
    expect(stale.stderr).toMatch(/^conflict: /);

    expect((await run('slot', 'set-state', 'slot202', 'down')).stdout).toBe('slot202: state up → down\n');
    const status = JSON.parse((await run('status', '--json')).stdout);
    expect(status.runningBackwards).toEqual([{ store: 'store2', preferredMaster: 'slot202', currentMaster: 'slot301', epoch: 1 }]);
    expect(status.slotsNotUp).toEqual([{ slot: 'slot202', machine: 'imap2', state: 'down', store: 'store2', role: 'replica' }]);
    expect(status.mastersPerMachine).toEqual({ imap1: 1, imap2: 0, imap3: 1 });

    const history = await run('history', '--limit', '2');
    expect(history.code).toBe(0);
    const lines = history.stdout.trimEnd().split('\n');
    expect(lines[1]).toMatch(/redis-test\s+setSlotState\s+slot:slot202\s+state up→down$/);
    expect(lines[2]).toMatch(/redis-test\s+failover\s+store:store2\s+.*currentMaster slot202→slot301/);
  });

  it('a directory file with several mistakes changes nothing in Redis', async () => {
    const { run } = await site();
    const before = (await run('directory', 'export', '--format', 'json')).stdout;
    const bad = await run('directory', 'apply', fixture('several-mistakes.yaml'));
    expect(bad.code).toBe(2);
    for (const path of ['slots.slot201', 'stores.store1', 'stores.store3', 'users.dave']) expect(bad.stderr).toContain(path);
    expect((await run('directory', 'export', '--format', 'json')).stdout).toBe(before);
  });

  it('users: move, suspend, password', async () => {
    const { run, config } = await site();
    expect((await run('user', 'move', 'alice', 'store2')).stdout).toBe('alice: store store1 (active) → store2 (active)\n');
    expect((await run('user', 'set-state', 'bob', 'suspended')).code).toBe(0);
    expect((await cli(['--config', config, 'user', 'set-password', 'bob'], { stdin: 'pw\n' })).code).toBe(0);
    const bob = JSON.parse((await run('user', 'show', 'bob', '--json')).stdout);
    expect(bob.user).toMatchObject({ name: 'bob', store: 'store1', state: 'suspended', hasPassword: true });
    expect(bob.master).toMatchObject({ name: 'slot101', ip: '127.0.1.1' });
  });
});
