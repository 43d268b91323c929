/**
 * The CLI as an operator runs it: a child process (`tsx src/cli/index.ts`), exit codes and all,
 * against the embedded backend in a temp dir and against a real redis-server.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cliProcess, embeddedSite, fixture, redisSite } from './harness.js';
import { startRedis, uniquePrefix, type RedisServer } from '../helpers/redis.js';
import { freePort } from '../helpers/ports.js';

describe('storeroute as a child process, embedded directory', () => {
  it('applies a file, fails over with an epoch check, reports status, and exits with the right codes', async () => {
    const site = embeddedSite();
    const env = { STOREROUTE_CONFIG: site.config };
    const applied = await cliProcess(['directory', 'apply', fixture('two-stores.yaml')], { env });
    expect(applied.stderr).toBe('');
    expect(applied.code).toBe(0);

    const failover = await cliProcess(['--actor', 'proc', 'store', 'failover', 'store1', '--expect-epoch', '0', '--json'], { env });
    expect(failover.code).toBe(0);
    expect(JSON.parse(failover.stdout)).toMatchObject({ currentMaster: 'slot201', epoch: 1 });

    const stale = await cliProcess(['store', 'failover', 'store1', '--expect-epoch', '0'], { env });
    expect(stale.code).toBe(1);
    expect(stale.stderr).toMatch(/^conflict: /);

    const status = await cliProcess(['status'], { env });
    expect(status.code).toBe(0);
    expect(status.stdout).toContain('Stores running backwards (1):');

    const bad = await cliProcess(['directory', 'apply', fixture('several-mistakes.yaml')], { env });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('users.dave');

    const usage = await cliProcess(['slot', 'set-state', 'slot101'], { env });
    expect(usage.code).toBe(2);
  });

  it('reads a new password from piped stdin', async () => {
    const site = embeddedSite();
    const env = { STOREROUTE_CONFIG: site.config };
    expect((await cliProcess(['directory', 'apply', fixture('two-stores.yaml')], { env })).code).toBe(0);
    const r = await cliProcess(['user', 'set-password', 'alice'], { env, stdin: 'sesame\n' });
    expect(r).toMatchObject({ code: 0, stdout: 'alice: password set\n' });
    expect(JSON.parse((await cliProcess(['user', 'show', 'alice', '--json'], { env })).stdout).user.hasPassword).toBe(true);
  });

  it('a bad config file exits 2 listing every problem', async () => {
    const r = await cliProcess(['--config', fixture('bad-config.yaml'), 'status']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('3 problem(s)');
  });
});

describe('storeroute as a child process, Redis directory', () => {
  let redis: RedisServer;
  beforeAll(async () => { redis = await startRedis(); });
  afterAll(async () => { await redis?.close(); });

  it('apply, export round-trip, failover conflict, set-state, status and history', async () => {
    const site = redisSite(redis.url, uniquePrefix('cli'));
    const env = { STOREROUTE_CONFIG: site.config };
    const applied = await cliProcess(['--actor', 'redis-test', 'directory', 'apply', fixture('two-stores.yaml')], { env });
    expect(applied.stderr).toBe('');
    expect(applied.code).toBe(0);

    const exported = await cliProcess(['directory', 'export'], { env });
    expect(exported.code).toBe(0);
    const file = join(site.dir, 'exported.yaml');
    writeFileSync(file, exported.stdout);
    const reapply = await cliProcess(['directory', 'apply', file], { env });
    expect(reapply.code).toBe(0);
    expect(reapply.stdout).toMatch(/no changes/);

    expect((await cliProcess(['store', 'failover', 'store2', '--to', 'slot301', '--expect-epoch', '0'], { env })).code).toBe(0);
    const stale = await cliProcess(['store', 'failover', 'store2', '--to', 'slot102', '--expect-epoch', '0'], { env });
    expect(stale.code).toBe(1);
    expect(stale.stderr).toMatch(/^conflict: /);

    expect((await cliProcess(['slot', 'set-state', 'slot202', 'down'], { env })).stdout).toBe('slot202: state up → down\n');
    const status = JSON.parse((await cliProcess(['status', '--json'], { env })).stdout);
    expect(status.runningBackwards).toEqual([{ store: 'store2', preferredMaster: 'slot202', currentMaster: 'slot301', epoch: 1 }]);
    expect(status.slotsNotUp).toEqual([{ slot: 'slot202', machine: 'imap2', state: 'down', store: 'store2', role: 'replica' }]);

    const history = await cliProcess(['history', '--limit', '2'], { env });
    expect(history.code).toBe(0);
    expect(history.stdout).toMatch(/setSlotState\s+slot:slot202/);
    expect(history.stdout).toMatch(/failover\s+store:store2/);

    const before = (await cliProcess(['directory', 'export', '--format', 'json'], { env })).stdout;
    const bad = await cliProcess(['directory', 'apply', fixture('several-mistakes.yaml')], { env });
    expect(bad.code).toBe(2);
    expect((await cliProcess(['directory', 'export', '--format', 'json'], { env })).stdout).toBe(before);
  });

  it('--redis pointing at nothing exits 75 (try again later), not 1', async () => {
    const port = await freePort();
    const r = await cliProcess(['--redis', `redis://127.0.0.1:${port}`, 'store', 'list']);
    expect(r.code).toBe(75);
    expect(r.stderr).toMatch(/^directory unavailable: /);
  });
});
