/**
 * The CLI as an operator runs it: a child process (`tsx src/cli/index.ts`), exit codes and all,
 * against the embedded backend in a temp dir and against a real redis-server. The commands'
 * behaviour is covered in-process (embedded.test.ts, redis.test.ts); this file checks the real
 * process boundary: argv, stdin, stdout/stderr, exit status, and that the process ends.
 */
import { describe, it, expect, beforeAll, afterAll, vi } from 'vitest';
import { cliProcess, embeddedSite, fixture, redisSite } from './harness.js';
import { startRedis, uniquePrefix, type RedisServer } from '../helpers/redis.js';
import { freePort } from '../helpers/ports.js';

// Every child pays tsx's start-up (~1-2 s on a busy two-core machine).
vi.setConfig({ testTimeout: 60_000 });

describe('storeroute as a child process', () => {
  let redis: RedisServer;
  beforeAll(async () => { redis = await startRedis(); });
  afterAll(async () => { await redis?.close(); });

  it('embedded: applies a file, sets a password from piped stdin, refuses a stale epoch (exit 1) and a bad file (exit 2)', async () => {
    const env = { STOREROUTE_CONFIG: embeddedSite().config };
    const applied = await cliProcess(['directory', 'apply', fixture('two-stores.yaml')], { env });
    expect(applied.stderr).toBe('');
    expect(applied.code).toBe(0);
    expect(await cliProcess(['user', 'set-password', 'alice'], { env, stdin: 'sesame\n' }))
      .toEqual({ code: 0, stdout: 'alice: password set\n', stderr: '' });
    const stale = await cliProcess(['store', 'failover', 'store1', '--expect-epoch', '7'], { env });
    expect(stale.code).toBe(1);
    expect(stale.stderr).toMatch(/^conflict: [^\n]+\n$/);
    const bad = await cliProcess(['directory', 'apply', fixture('several-mistakes.yaml')], { env });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('users.dave');
  });

  it('a bad config file exits 2 listing every problem', async () => {
    const r = await cliProcess(['--config', fixture('bad-config.yaml'), 'status']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('3 problem(s)');
  });

  it('redis: apply, failover with --json, a stale epoch exits 1, status --json parses', async () => {
    const env = { STOREROUTE_CONFIG: redisSite(redis.url, uniquePrefix('cli')).config };
    expect((await cliProcess(['directory', 'apply', fixture('two-stores.yaml')], { env })).code).toBe(0);
    const failover = await cliProcess(['store', 'failover', 'store1', '--expect-epoch', '0', '--json'], { env });
    expect(failover.code).toBe(0);
    expect(JSON.parse(failover.stdout)).toMatchObject({ currentMaster: 'slot201', epoch: 1 });
    const stale = await cliProcess(['store', 'failover', 'store1', '--expect-epoch', '0'], { env });
    expect(stale.code).toBe(1);
    expect(stale.stderr).toMatch(/^conflict: /);
    const status = JSON.parse((await cliProcess(['status', '--json'], { env })).stdout);
    expect(status.runningBackwards).toHaveLength(1);
  });

  it('--redis pointing at nothing exits 75 (try again later), with one line on stderr', async () => {
    const port = await freePort();
    const r = await cliProcess(['--redis', `redis://127.0.0.1:${port}`, 'store', 'list']);
    expect(r.code).toBe(75);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^directory unavailable: [^\n]+\n$/);
  });
});
