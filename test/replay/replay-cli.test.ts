/**
 * `storeroute replay` end to end in-process: embedded (local journal) and redis (fan-out to the
 * instances registered in Redis, each a real admin API serving POST /replay, or an HTTP listener
 * that records the Authorization header it was sent).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Command } from 'commander';
import { registerReplay } from '../../src/cli/replay.js';
import { reportError, EXIT, type CliIo } from '../../src/cli/io.js';
import { createAdminServer } from '../../src/admin/index.js';
import { startHeartbeat, type Heartbeat } from '../../src/replay/heartbeat.js';
import { parseConfig } from '../../src/config/index.js';
import { createDirectory, type Directory } from '../../src/directory/index.js';
import { openJournal, type Journal } from '../../src/journal/index.js';
import { replayStore, type ReplayOptions } from '../../src/replay/index.js';
import { encodeInstance, instancesKey, registryKey, signInstance } from '../../src/replay/instances.js';
import { startLmtpBackend, type LmtpBackend } from '../helpers/lmtp-backend.js';
import { uniquePrefix, useRedisServer } from '../helpers/redis.js';
import { freePort, waitFor } from '../helpers/ports.js';
import { testLogger, testRegistry } from '../helpers/logger.js';
import { journalConfig, journalOne, message, recipient, tempDir } from '../journal/helpers.js';

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

/**
 * An admin API stand-in that records who was sent which Authorization header. Answers 401 without
 * one (as the real one does), else what `answers` says for the path, else a one-record summary.
 */
interface Recorder {
  url: string;
  requests: Array<{ path: string; authorization: string | undefined }>;
  answers: Map<string, { status: number; body: unknown }>;
  close(): Promise<void>;
}

async function startRecorder(): Promise<Recorder> {
  const requests: Recorder['requests'] = [];
  const answers: Recorder['answers'] = new Map();
  const summary = { store: 'store1', master: 'slotB', selected: 1, alreadyPresent: 1, delivered: 0, refused: 0, failed: 0,
    skippedAlreadyReplayed: 0, wouldDeliver: 0, dryRun: false, items: [] };
  const server: Server = createServer((req, res) => {
    requests.push({ path: req.url ?? '', authorization: req.headers.authorization });
    req.resume();
    req.on('end', () => {
      const a = !req.headers.authorization ? { status: 401, body: { error: 'missing or wrong bearer token' } }
        : answers.get(req.url ?? '') ?? { status: 200, body: summary };
      res.writeHead(a.status, { 'content-type': 'application/json' }).end(JSON.stringify(a.body));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests, answers,
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

const TOKEN = 'tok-7f3a9c1e5b2d4f60';

describe('storeroute replay (redis: fan-out to every live instance)', () => {
  const rs = useRedisServer();
  let t: { dir: string; cleanup: () => Promise<void> };
  let backend: LmtpBackend;
  let recorder: Recorder;
  let prefix: string;
  const instances: Array<{ journal: Journal; directory: Directory; admin: ReturnType<typeof createAdminServer> }> = [];
  const heartbeats: Heartbeat[] = [];

  beforeEach(async () => {
    t = await tempDir('replay-fan');
    backend = await startLmtpBackend();
    recorder = await startRecorder();
    prefix = uniquePrefix('replay');
  });
  afterEach(async () => {
    for (const h of heartbeats.splice(0)) await h.stop();
    for (const i of instances.splice(0)) {
      await i.admin.close();
      await i.journal.close();
      await i.directory.close();
    }
    await recorder.close();
    await backend.close();
    await t.cleanup();
  });

  /** A CLI config for this test's Redis and prefix; `token` null leaves admin.token out. */
  async function cliConfig(token: string | null = TOKEN): Promise<string> {
    const file = join(t.dir, 'redis.yaml');
    await writeFile(file, `directory:\n  backend: redis\n  redis:\n    url: ${rs.server.url}\n    keyPrefix: "${prefix}"\n`
      + (token ? `admin:\n  token: ${token}\n` : ''));
    return file;
  }

  /** Registers an instance the way `serve` does: the real heartbeat, signing with `token`. */
  async function register(name: string, url: string, token = TOKEN): Promise<void> {
    const config = parseConfig({ directory: { backend: 'redis', redis: { url: rs.server.url, keyPrefix: prefix } } }).directory.redis;
    heartbeats.push(startHeartbeat({ config, name, url, intervalMs: 60_000, obs: obs(), token }));
    await waitFor(() => rs.client.hexists(instancesKey(prefix), name), 5_000, `${name} registered`);
  }

  it('sums the results of every live instance and skips stale ones', async () => {
    await seedDirectory(join(t.dir, 'directory.json'), backend);
    const key = await registryKey(TOKEN);
    for (const name of ['p1', 'p2', 'p3']) {
      await journalTwo(join(t.dir, name));
      const journal = await openJournal(journalConfig(join(t.dir, name)), obs());
      // Each instance has its own embedded directory copy here; in production they share Redis.
      const directory = await createDirectory(parseConfig({ directory: { embedded: { file: join(t.dir, 'directory.json') } } }).directory, obs());
      const admin = createAdminServer({
        config: parseConfig({ admin: { token: TOKEN, listen: { port: 0 } } }).admin, obs: obs(), readiness: [],
        routes: [{ method: 'POST', path: '/replay', handler: (body) => replayStore({ ...(body as object), journal, directory,
          imap: parseConfig({}).replay, obs: obs() } as ReplayOptions) }],
      });
      const { url } = await admin.listen();
      instances.push({ journal, directory, admin });
      const lastSeen = name === 'p3' ? Date.now() - 60_000 : Date.now();
      await rs.client.hset(instancesKey(prefix), name, encodeInstance(signInstance(name, { url, lastSeen }, key)));
    }
    const r = await cli(['--config', await cliConfig(), 'replay', '--store', 'store1', '--no-check']);
    expect(r.err).toContain('warning: instance p3');
    expect(r.out).toContain('selected 4, already present 0, delivered 4, refused 0, failed 0, already replayed 0');
    expect(r.out).toMatch(/^delivered +p1 /m);
    expect(r.code).toBe(0);
    expect(backend.messages).toHaveLength(4);
  });

  it('sends the admin token only to instances whose registry entry is signed with it: planted entries get nothing', async () => {
    await register('p1', `${recorder.url}/p1/`);
    const key = instancesKey(prefix);
    const p1 = JSON.parse((await rs.client.hget(key, 'p1'))!) as Record<string, unknown>;
    // What someone who can write Redis but does not know the token can plant.
    const now = Date.now();
    await rs.client.hset(key, 'evil-unsigned', JSON.stringify({ url: `${recorder.url}/evil1/`, lastSeen: now }));
    await rs.client.hset(key, 'evil-forged', JSON.stringify({ url: `${recorder.url}/evil2/`, lastSeen: now, sig: `v1:${randomBytes(32).toString('base64url')}` }));
    await rs.client.hset(key, 'evil-moved', JSON.stringify({ ...p1, url: `${recorder.url}/evil3/` }));
    await rs.client.hset(key, 'evil-copied', JSON.stringify(p1));
    const r = await cli(['--config', await cliConfig(), 'replay', '--store', 'store1']);
    expect(recorder.requests).toEqual([{ path: '/p1/replay', authorization: `Bearer ${TOKEN}` }]);
    expect(r.err).toContain(`warning [INSTANCE_UNSIGNED]: instance "evil-unsigned" ("${recorder.url}/evil1/") is not signed: skipped`);
    for (const name of ['evil-forged', 'evil-moved', 'evil-copied']) expect(r.err).toContain(`warning [INSTANCE_BAD_SIGNATURE]: instance "${name}"`);
    expect(r.out).toContain('replay store1 → slotB: selected 1, already present 1');
    expect(r.code).toBe(0);
  });

  it('without admin.token, or with another one, says what is wrong and contacts no instance', async () => {
    await register('p1', `${recorder.url}/p1/`);
    const none = await cli(['--config', await cliConfig(null), 'replay', '--store', 'store1']);
    expect(none.code).toBe(EXIT.usage);
    expect(none.err).toContain('admin.token: not set: with the redis directory, replay asks each instance\'s admin API');
    expect(none.out).toBe('');
    const other = await cli(['--config', await cliConfig('some-other-token-0123'), 'replay', '--store', 'store1']);
    expect(other.code).toBe(EXIT.usage);
    expect(other.err).toContain('warning [INSTANCE_BAD_SIGNATURE]: instance "p1"');
    expect(other.err).toContain('is admin.token here the same as on the instances?');
    expect(other.out).toBe('');
    expect(recorder.requests).toEqual([]);
  });

  it('when no instance answers, prints each failure (status and body, or the network error), no summary, and exits 75', async () => {
    await register('p1', `${recorder.url}/p1/`);
    const closed = await freePort();
    await register('p2', `http://127.0.0.1:${closed}/`);
    recorder.answers.set('/p1/replay', { status: 500, body: { error: 'journal unavailable', code: 'JOURNAL_UNAVAILABLE' } });
    const r = await cli(['--config', await cliConfig(), 'replay', '--store', 'store1']);
    expect(r.code).toBe(EXIT.tempfail);
    expect(r.out).toBe('');
    expect(r.err).toContain(`error [INSTANCE_UNAVAILABLE]: instance p1 (${recorder.url}/p1/replay): HTTP 500: journal unavailable\n`);
    expect(r.err).toContain(`error [INSTANCE_UNAVAILABLE]: instance p2 (http://127.0.0.1:${closed}/replay): connect ECONNREFUSED`);
    expect(r.err).toContain('replay failed: no instance answered, nothing was replayed\n');
    const json = await cli(['--config', await cliConfig(), 'replay', '--store', 'store1', '--json']);
    expect(json.code).toBe(EXIT.tempfail);
    const doc = JSON.parse(json.out) as Record<string, unknown> & { errors: Array<{ instance: string; code: string }> };
    expect(doc).not.toHaveProperty('selected');
    expect(doc.errors.map((e) => [e.instance, e.code])).toEqual([['p1', 'INSTANCE_UNAVAILABLE'], ['p2', 'INSTANCE_UNAVAILABLE']]);
  });

  it('an instance that refuses the token fails the run with exit 2, after the summary of those that answered', async () => {
    await register('p1', `${recorder.url}/p1/`);
    await register('p2', `${recorder.url}/p2/`);
    recorder.answers.set('/p2/replay', { status: 401, body: { error: 'missing or wrong bearer token' } });
    const r = await cli(['--config', await cliConfig(), 'replay', '--store', 'store1']);
    expect(r.code).toBe(EXIT.usage);
    expect(r.out).toContain('replay store1 → slotB: selected 1, already present 1');
    expect(r.err).toContain(`error [INSTANCE_UNAUTHORIZED]: instance p2 (${recorder.url}/p2/replay): HTTP 401: missing or wrong bearer token\n`);
    expect(r.err).toContain('replay incomplete: 1 instance(s) failed');
  });
});
