/**
 * Issue 11 item 3: `directory apply` is one change. A reader running beside it sees the directory
 * before or after, never in between (no version between the two, no user half-moved, no user of
 * the file unknown while it is applied), on both backends and on both Redis paths (tables patched
 * in the script, and big tables staged and swapped in). Versions are contiguous with one audit
 * record each; a commit planned on an old version applies nothing.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/index.js';
import {
  applyDirectory, createDirectory, diffDirectory, DirectoryConflictError, DirectoryUnavailableError, parseDirectoryText,
  RedisDirectory, type ChangeEvent, type Directory, type DirectorySnapshot, type Route,
} from '../../src/directory/index.js';
import { startRedis, uniquePrefix, type RedisServer } from '../helpers/redis.js';
import { testLogger, testRegistry } from '../helpers/logger.js';

const obs = () => ({ logger: testLogger(), metrics: testRegistry() });
const USERS = 100;

/** Layout A: store1 with u0…u99. Layout B: store2 added on new slots, u* moved to it, n0…n99 created on it. */
function layout(b: boolean): DirectorySnapshot {
  const slots: Record<string, unknown> = { s1a: { machine: 'm1', ip: '127.0.1.1' }, s1b: { machine: 'm2', ip: '127.0.1.2' } };
  const stores: Record<string, unknown> = { store1: { slots: ['s1a', 's1b'], preferredMaster: 's1a' } };
  const users: Record<string, string> = {};
  for (let i = 0; i < USERS; i++) users[`u${i}`] = b ? 'store2' : 'store1';
  if (b) {
    slots.s2a = { machine: 'm3', ip: '127.0.2.1' };
    slots.s2b = { machine: 'm4', ip: '127.0.2.2' };
    stores.store2 = { slots: ['s2a', 's2b'], preferredMaster: 's2a' };
    for (let i = 0; i < USERS; i++) users[`n${i}`] = 'store2';
  }
  return parseDirectoryText(JSON.stringify({ slots, stores, users }), b ? 'B' : 'A');
}

interface Seen {
  name: string;
  route: Route | null;
  error?: unknown;
}

/** Resolves u* and n* in batches of 8 until `done()`; every answer, in order. */
async function readUntil(reader: Directory, done: () => boolean): Promise<Seen[][]> {
  const batches: Seen[][] = [];
  for (let i = 0; !done() || batches.length < 3; i++) {
    const names = Array.from({ length: 8 }, (_, k) => `${k % 2 ? 'n' : 'u'}${(i * 4 + (k >> 1)) % USERS}`);
    batches.push(await Promise.all(names.map(async (name) => {
      try {
        return { name, route: await reader.resolve(name) };
      } catch (error) {
        return { name, route: null, error };
      }
    })));
    // An in-process lookup answers in a microtask: give the apply's I/O its turn between batches.
    await new Promise((r) => setImmediate(r));
  }
  return batches;
}

interface Site {
  dir: Directory;
  /** What a lookup elsewhere sees (another connection for Redis, the same process for embedded). */
  reader: Directory;
  cleanup(): Promise<void>;
}

let redis: RedisServer;
beforeAll(async () => { redis = await startRedis(); });
afterAll(async () => { await redis.close(); });

const backends: Array<[string, () => Promise<Site>]> = [
  ['embedded', async () => {
    const tmp = await mkdtemp(join(tmpdir(), 'sr-atomic-'));
    const dir = await createDirectory(parseConfig({ directory: { embedded: { file: join(tmp, 'd.json') } } }).directory, obs());
    return { dir, reader: dir, cleanup: async () => { await dir.close(); await rm(tmp, { recursive: true, force: true }); } };
  }],
  ...([['redis, patched in one script', undefined], ['redis, big tables staged and swapped in', 5]] as const).map(
    ([name, patchLimit]): [string, () => Promise<Site>] => [name, async () => {
      const config = parseConfig({ directory: { backend: 'redis', redis: { url: redis.url, keyPrefix: uniquePrefix('atomic') } } }).directory;
      const dir = await RedisDirectory.open(config.redis, obs(), undefined, { patchLimit });
      const reader = await RedisDirectory.open(config.redis, obs());
      return { dir, reader, cleanup: async () => { await dir.close(); await reader.close(); } };
    }]),
];

for (const [name, make] of backends) {
  describe(`atomic directory apply: ${name}`, () => {
    let site: Site;
    beforeEach(async () => { site = await make(); });
    afterEach(async () => { await site.cleanup(); });

    it('a concurrent reader sees the directory before or after the apply, never in between', async () => {
      await applyDirectory(site.dir, layout(false), { actor: 'test' });
      const from = await site.dir.version();
      let done = false;
      const reading = readUntil(site.reader, () => done);
      const result = await applyDirectory(site.dir, layout(true), { actor: 'apply:test' }).finally(() => { done = true; });
      const batches = await reading;
      expect(result.applied).toBe(2 + 1 + 2 * USERS + USERS);
      expect(result).toMatchObject({ fromVersion: from, toVersion: from + result.applied });
      const to = result.toVersion;

      // A batch's 8 lookups run concurrently, so within one batch old and new may both be seen, in
      // any order; a batch starts only after the previous one finished, so it never sees a version
      // older than any the batches before it saw.
      let highest = 0;
      for (const batch of batches) {
        let batchHighest = highest;
        for (const s of batch) {
          expect(s.error).toBeUndefined();
          if (s.route) {
            const v = s.route.version;
            expect(v === from || v === to, `${s.name} read at version ${v}, between ${from} and ${to}`).toBe(true);
            expect(s.route.user.state).toBe('active'); // never half-moved
            expect(s.route.store.name).toBe(v === from ? 'store1' : 'store2');
            expect(v).toBeGreaterThanOrEqual(highest);
            batchHighest = Math.max(batchHighest, v);
          } else {
            // Unknown: only a user the file creates, and only before the apply.
            expect(s.name.startsWith('n'), `${s.name} answered unknown`).toBe(true);
            expect(highest, `${s.name} unknown after the apply was seen`).toBeLessThan(to);
          }
        }
        highest = batchHighest;
      }
    });

    it('takes contiguous versions with one audit record each, publishes them, and keeps older history below', async () => {
      await applyDirectory(site.dir, layout(false), { actor: 'test' });
      const from = await site.dir.version();
      const events: ChangeEvent[] = [];
      site.dir.onChange((e) => events.push(e));
      const { toVersion } = await applyDirectory(site.dir, layout(true), { actor: 'apply:test' });
      const history = await site.dir.history(toVersion);
      expect(history.map((r) => r.version)).toEqual(Array.from({ length: toVersion }, (_, i) => toVersion - i));
      expect(history.slice(0, toVersion - from).every((r) => r.actor === 'apply:test')).toBe(true);
      expect(history[toVersion - from]).toMatchObject({ version: from, actor: 'test', action: 'createUser' });
      expect(history.find((r) => r.action === 'createStore' && r.target === 'store:store2')?.version).toBe(from + 3);
      await expect.poll(() => events.length).toBe(toVersion - from);
      expect(events.map((e) => e.version)).toEqual(history.slice(0, toVersion - from).map((r) => r.version).reverse());
    });

    it('a plan made on an older version commits nothing; apply plans again and succeeds', async () => {
      await applyDirectory(site.dir, layout(false), { actor: 'test' });
      const base = await site.dir.snapshot();
      const mutations = diffDirectory(base, layout(true));
      await site.dir.setSlotState('s1b', 'maintenance', 'someone-else');
      const err = await site.dir.commit({ base, mutations }, 'apply:test').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DirectoryConflictError);
      expect(err).toMatchObject({ expected: base.version, actual: base.version + 1 });
      expect(await site.dir.version()).toBe(base.version + 1);
      expect(await site.dir.getStore('store2')).toBeNull();
      expect((await site.dir.getUser('u1'))?.store).toBe('store1');
      // applyDirectory plans against the newer directory (keeping the file's slot state: up).
      const r = await applyDirectory(site.dir, layout(true), { actor: 'apply:test' });
      expect(r.fromVersion).toBe(base.version + 1);
      expect((await site.dir.getUser('u1'))?.store).toBe('store2');
    });

    it('store epochs never go backwards when apply deletes a store and creates it again', async () => {
      await applyDirectory(site.dir, layout(true), { actor: 'test' });
      await site.dir.failover('store2', { to: 's2b' }, 'test');
      await site.dir.failover('store2', { to: 's2a' }, 'test');
      const without = layout(false);
      await applyDirectory(site.dir, without, { actor: 'test', prune: true, force: true });
      expect(await site.dir.getStore('store2')).toBeNull();
      await applyDirectory(site.dir, layout(true), { actor: 'test' });
      expect((await site.dir.getStore('store2'))?.epoch).toBe(3);
      const stale = await site.dir.failover('store2', { to: 's2b', expectedEpoch: 2 }, 'test').catch((e: unknown) => e);
      expect(stale).toBeInstanceOf(DirectoryConflictError);
    });
  });
}

describe('atomic directory apply: restoring an emptied Redis', () => {
  it('users of the file are answered "unavailable" before and routed after, never "unknown" in between', async () => {
    const config = parseConfig({ directory: { backend: 'redis', redis: { url: redis.url, keyPrefix: uniquePrefix('restore') } } }).directory;
    const writer = await RedisDirectory.open(config.redis, obs());
    const reader = await RedisDirectory.open(config.redis, obs());
    try {
      await expect(reader.resolve('u1')).rejects.toBeInstanceOf(DirectoryUnavailableError);
      let done = false;
      const reading = readUntil(reader, () => done);
      await applyDirectory(writer, layout(true), { actor: 'restore' }).finally(() => { done = true; });
      const seen = (await reading).flat();
      const unknown = seen.filter((s) => s.route === null && s.error === undefined).map((s) => s.name);
      expect(unknown, 'answered 550 5.1.1 during the restore').toEqual([]);
      for (const s of seen) if (s.error) expect(s.error).toBeInstanceOf(DirectoryUnavailableError);
      expect((await reader.resolve('n7'))?.store.name).toBe('store2');
    } finally {
      await writer.close();
      await reader.close();
    }
  });
});
