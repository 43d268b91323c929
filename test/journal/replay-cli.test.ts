/**
 * `storeroute replay` end to end in-process: embedded (local journal) and redis (fan-out to the
 * instances registered in Redis, each a real admin API serving POST /replay).
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Command } from 'commander';
import { Redis } from 'ioredis';
import { registerReplay } from '../../src/cli/replay.js';
import { reportError, EXIT, type CliIo } from '../../src/cli/io.js';
import { createAdminServer } from '../../src/admin/index.js';
import { parseConfig } from '../../src/config/index.js';
import { createDirectory, type Directory } from '../../src/directory/index.js';
import { openJournal, replayStore, type Journal, type ReplayOptions } from '../../src/journal/index.js';
import { encodeInstance, instancesKey } from '../../src/journal/instances.js';
import { startLmtpBackend, type LmtpBackend } from '../helpers/lmtp-backend.js';
import { startRedis, uniquePrefix, type RedisServer } from '../helpers/redis.js';
import { testLogger, testRegistry } from '../helpers/logger.js';
import { journalConfig, journalOne, message, recipient, tempDir } from './helpers.js';

const obs = () => ({ logger: testLogger(), metrics: testRegistry() });

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io: CliIo = { stdout: (t) => { out += t; }, stderr: (t) => { err += t; }, stdin: process.stdin, env: {} };
  const program = new Command('storeroute').option('--config <file>').option('--actor <name>').exitOverride()
    .configureOutput({ writeOut: (s) => io.stdout(s), writeErr: (s) => io.stderr(s) });
  registerReplay(program, io);
  try {
    await program.parseAsync(args, { from: 'user' });
    return { code: EXIT.ok, out, err };
  } catch (e) {
    return { code: reportError(e, io), out, err };
  }
}

/** A directory with store1 = [slotA, slotB], failed over to slotB (the backend). */
async function seedDirectory(file: string, backend: LmtpBackend): Promise<void> {
  const d = await createDirectory(parseConfig({ directory: { embedded: { file } } }).directory, obs());
  await d.createSlot({ name: 'slotA', machine: 'mA', ip: '127.0.0.1', lmtp: 1 }, 'test');
  await d.createSlot({ name: 'slotB', machine: 'mB', ip: backend.host, lmtp: backend.port }, 'test');
  await d.createStore({ name: 'store1', slots: ['slotA', 'slotB'], preferredMaster: 'slotA' }, 'test');
  await d.createUser({ name: 'alice', store: 'store1' }, 'test');
  await d.failover('store1', { to: 'slotB', force: true }, 'test');
  await d.close();
}

async function journalTwo(dir: string): Promise<void> {
  const j = await openJournal(journalConfig(dir), obs());
  for (const n of [1, 2]) {
    await journalOne(j, message(`m${n}@cli`), [recipient('alice@cli.test', { user: 'alice', slot: 'slotA' })], { messageId: `<m${n}@cli>` });
  }
  await j.close();
}

describe('storeroute replay (embedded: the local journal)', () => {
  let t: { dir: string; cleanup: () => Promise<void> };
  let backend: LmtpBackend;
  let config: string;

  beforeEach(async () => {
    t = await tempDir('replay-cli');
    backend = await startLmtpBackend();
    await seedDirectory(join(t.dir, 'directory.json'), backend);
    await journalTwo(join(t.dir, 'journal'));
    config = join(t.dir, 'storeroute.yaml');
    await writeFile(config, `directory:\n  embedded:\n    file: directory.json\njournal:\n  dir: journal\n`);
  });
  afterEach(async () => {
    await backend.close();
    await t.cleanup();
  });

  it('re-delivers, prints one line per item and a summary, and the second run reports them already replayed', async () => {
    const first = await cli(['--config', config, '--actor', 'ops', 'replay', '--store', 'store1', '--no-check', '--last', '10m']);
    expect(first.code).toBe(0);
    expect(first.out).toMatch(/^delivered +[0-9a-f]{16} alice@cli\.test <m1@cli> {2}250 /m);
    expect(first.out).toContain('replay store1 → slotB: selected 2, already present 0, delivered 2, refused 0, failed 0, already replayed 0\n');
    expect(backend.messages).toHaveLength(2);
    const second = await cli(['--config', config, 'replay', '--store', 'store1', '--no-check', '--json']);
    expect(second.code).toBe(0);
    const summary = JSON.parse(second.out) as { skippedAlreadyReplayed: number; delivered: number; items: Array<{ detail: string }> };
    expect(summary).toMatchObject({ skippedAlreadyReplayed: 2, delivered: 0 });
    expect(summary.items[0]?.detail).toMatch(/^delivered at .* by ops$/);
    expect(backend.messages).toHaveLength(2);
  });

  it('exits non-zero when a recipient failed', async () => {
    backend.behaviour = { final: () => ({ code: 451, text: '4.3.0 try later' }) };
    const r = await cli(['--config', config, 'replay', '--store', 'store1', '--no-check']);
    expect(r.code).toBe(EXIT.refused);
    expect(r.out).toContain('failed 2');
  });

  it('rejects a bad time, --since with --last, and an unknown store, delivering nothing', async () => {
    const bad = await cli(['--config', config, 'replay', '--store', 'store1', '--since', 'yesterday']);
    expect(bad.code).toBe(EXIT.usage);
    expect(bad.err).toContain('expected an ISO-8601 time, got "yesterday"');
    const both = await cli(['--config', config, 'replay', '--store', 'store1', '--since', '2024-01-01T00:00:00Z', '--last', '5m']);
    expect(both.code).toBe(EXIT.usage);
    const unknown = await cli(['--config', config, 'replay', '--store', 'nope', '--no-check']);
    expect(unknown.code).not.toBe(0);
    expect(unknown.err).toContain('store "nope" does not exist');
    expect(backend.messages).toHaveLength(0);
  });
});

describe('storeroute replay (redis: fan-out to every live instance)', () => {
  let redis: RedisServer;
  let client: Redis;
  let t: { dir: string; cleanup: () => Promise<void> };
  let backend: LmtpBackend;
  const instances: Array<{ journal: Journal; directory: Directory; admin: ReturnType<typeof createAdminServer> }> = [];

  beforeAll(async () => {
    redis = await startRedis();
    client = new Redis(redis.port);
  });
  afterAll(async () => {
    client.disconnect();
    await redis.close();
  });
  beforeEach(async () => {
    t = await tempDir('replay-fan');
    backend = await startLmtpBackend();
  });
  afterEach(async () => {
    for (const i of instances.splice(0)) {
      await i.admin.close();
      await i.journal.close();
      await i.directory.close();
    }
    await backend.close();
    await t.cleanup();
  });

  it('sums the results of every live instance and skips stale ones', async () => {
    const prefix = uniquePrefix('replay');
    await seedDirectory(join(t.dir, 'directory.json'), backend);
    for (const name of ['p1', 'p2', 'p3']) {
      await journalTwo(join(t.dir, name));
      const journal = await openJournal(journalConfig(join(t.dir, name)), obs());
      // Each instance has its own embedded directory copy here; in production they share Redis.
      const directory = await createDirectory(parseConfig({ directory: { embedded: { file: join(t.dir, 'directory.json') } } }).directory, obs());
      const admin = createAdminServer({
        config: parseConfig({ admin: { token: 'tok', listen: { port: 0 } } }).admin, obs: obs(), readiness: [],
        routes: [{ method: 'POST', path: '/replay', handler: (body) => replayStore({ ...(body as object), journal, directory,
          imap: parseConfig({}).replay, obs: obs() } as ReplayOptions) }],
      });
      const { url } = await admin.listen();
      instances.push({ journal, directory, admin });
      const lastSeen = name === 'p3' ? Date.now() - 60_000 : Date.now();
      await client.hset(instancesKey(prefix), name, encodeInstance({ url, lastSeen }));
    }
    const config = join(t.dir, 'redis.yaml');
    await writeFile(config, `directory:\n  backend: redis\n  redis:\n    url: ${redis.url}\n    keyPrefix: "${prefix}"\nadmin:\n  token: tok\n`);
    const r = await cli(['--config', config, 'replay', '--store', 'store1', '--no-check']);
    expect(r.err).toContain('warning: instance p3');
    expect(r.out).toContain('selected 4, already present 0, delivered 4, refused 0, failed 0, already replayed 0');
    expect(r.out).toMatch(/^delivered +p1 /m);
    expect(r.code).toBe(0);
    expect(backend.messages).toHaveLength(4);
  });

  it('reports an instance that refuses the token and exits non-zero', async () => {
    const prefix = uniquePrefix('replay');
    await client.hset(instancesKey(prefix), 'ghost', encodeInstance({ url: 'http://127.0.0.1:1', lastSeen: Date.now() }));
    const config = join(t.dir, 'redis.yaml');
    await writeFile(config, `directory:\n  backend: redis\n  redis:\n    url: ${redis.url}\n    keyPrefix: "${prefix}"\n`);
    const r = await cli(['--config', config, 'replay', '--store', 'store1']);
    expect(r.code).toBe(EXIT.refused);
    expect(r.err).toMatch(/error: instance ghost \(http:\/\/127\.0\.0\.1:1\/replay\): /);
  });
});
