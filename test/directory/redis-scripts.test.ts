/**
 * The Lua scripts against a real redis-server, below the typed wrapper where needed: every reply
 * kind, a retried call, SCRIPT FLUSH, 50 racing failovers, the capped audit list, key layout.
 */
import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/index.js';
import {
  applyDirectory, createDirectory, diffDirectory, DirectoryConflictError, DirectoryRuleError, DirectoryUnavailableError, directoryKeys,
  parseDirectoryText, RedisDirectory, type Directory,
} from '../../src/directory/index.js';
import { defineScripts, loadScriptSources } from '../../src/directory/redis/scripts.js';
import { uniquePrefix, useRedisServer } from '../helpers/redis.js';
import { testLogger, testRegistry } from '../helpers/logger.js';
import { seedLayout } from './behaviour.js';

const rs = useRedisServer();

const obs = () => ({ logger: testLogger(), metrics: testRegistry() });

describe('directory Lua scripts', () => {
  let prefix: string;
  let dirs: Directory[];
  const open = async (extra: Record<string, unknown> = {}) => {
    const d = await createDirectory(parseConfig({ directory: { backend: 'redis',
      redis: { url: rs.server.url, keyPrefix: prefix, ...extra } } }).directory, obs());
    dirs.push(d);
    return d;
  };
  beforeEach(() => {
    prefix = uniquePrefix('lua');
    dirs = [];
  });
  afterEach(async () => {
    for (const d of dirs) await d.close();
  });

  function scripts() {
    const client = new Redis(rs.server.url);
    return { client, s: defineScripts(client, loadScriptSources()), keys: directoryKeys(prefix) };
  }

  it('answers each named error kind from Lua itself (the wrapper bypassed)', async () => {
    const { client, s, keys } = scripts();
    const call = (script: Parameters<typeof s.mutate>[0], payload: unknown, actor = 'test') =>
      s.mutate(script, keys.mutation, [keys.channel, actor, '100', typeof payload === 'string' ? payload : JSON.stringify(payload)])
        .then((r): { ok?: [number, string]; err?: string } => ({ ok: r }), (e: Error) => ({ err: e.message }));
    try {
      expect(await call('createSlot', { name: 'a', machine: 'm1', ip: '127.0.0.1' })).toEqual({ ok: [1, expect.stringContaining('"machine":"m1"')] });
      // Validation that the TypeScript wrapper would also do, enforced in Lua for any other caller.
      expect((await call('createSlot', { name: 'b', machine: 'm1', ip: '127.0.0.01' })).err).toMatch(/^SR_RULE INVALID_IP /);
      expect((await call('createSlot', { name: 'b', machine: 'm1', ip: '::1', lmtp: 0 })).err).toMatch(/^SR_RULE INVALID_PORT /);
      expect((await call('createSlot', { name: 'b c', machine: 'm1', ip: '::1' })).err).toMatch(/^SR_RULE INVALID_NAME /);
      expect((await call('createSlot', { name: 'b', machine: 'm1', ip: '::1', state: 'on' })).err).toMatch(/^SR_RULE INVALID_STATE /);
      expect((await call('createUser', { name: 'Alice', store: 'x' })).err).toMatch(/^SR_RULE INVALID_NAME /);
      expect((await call('createSlot', { name: 'b', machine: 'm1', ip: '::1' }, '')).err).toMatch(/^SR_RULE INVALID_ACTOR /);
      expect((await call('createSlot', 'not json')).err).toMatch(/^SR_ARG payload must be a JSON object/);
      expect((await call('setSlotState', { name: 'zz', state: 'down' })).err).toMatch(/^SR_NOTFOUND slot zz/);
      expect((await call('failover', { store: 'zz', expectedEpoch: 1.5 })).err).toMatch(/^SR_NOTFOUND store zz/);
      // Wrong key count: only a caller that bypasses defineCommand can do it.
      const common = loadScriptSources().mutations.setSlotState;
      await expect(client.eval(common, 1, keys.version, keys.channel, 'test', '100', '{}')).rejects.toThrow(/SR_ARG expected 7 keys/);
      expect(await rs.client.get(keys.version)).toBe('1');
    } finally {
      client.disconnect();
    }
  });

  it('resolve answers the bare version for an unknown user, -1 when dangling, 0 when empty, else one JSON text [version, user, store, slot]', async () => {
    const d = await open();
    await seedLayout(d);
    await d.setPasswordHash('alice', 'scrypt$16384$8$1$c2/sdA==$aGFz/aA==', 'test');
    await d.beginMove('alice', 'store2', 'test'); // movingTo names another store: must not be taken for `store`
    const { client, s, keys } = scripts();
    try {
      const version = await d.version();
      expect(await s.resolve(keys.read, 'nobody')).toBe(version);
      const text = await s.resolve(keys.read, 'alice');
      expect(typeof text).toBe('string');
      const [v, user, store, slot] = JSON.parse(text as string) as [number, { store: string; passwordHash: string }, { name: string }, { name: string }];
      expect(v).toBe(version);
      expect(user).toMatchObject({ store: 'store1', movingTo: 'store2', passwordHash: 'scrypt$16384$8$1$c2/sdA==$aGFz/aA==' });
      expect([store.name, slot.name]).toEqual(['store1', 'slot101']);
      // An entry spelled differently from what the scripts write (spaces): the decode fallback finds it.
      await rs.client.hset(keys.users, 'carol', '{ "name": "carol", "state": "active", "store": "store2" }');
      expect((await d.resolve('carol'))?.master.name).toBe('slot301');
      // A user whose store vanished (written around the scripts): inconsistent, so transient —
      // never "unknown user", which would bounce the mail.
      await rs.client.hset(keys.users, 'dave', JSON.stringify({ name: 'dave', store: 'gone', state: 'active' }));
      expect(await s.resolve(keys.read, 'dave')).toBe(-1);
      await expect(d.resolve('dave')).rejects.toBeInstanceOf(DirectoryUnavailableError);
      // No version key: this Redis holds no directory (lost its data, wrong db or prefix): 0, and
      // resolve() raises DirectoryUnavailableError for known and unknown names alike.
      await rs.client.del(keys.version);
      expect(await s.resolve(keys.read, 'nobody')).toBe(0);
      await expect(d.resolve('nobody')).rejects.toBeInstanceOf(DirectoryUnavailableError);
    } finally {
      client.disconnect();
    }
  });

  it('maps a conflict from Lua to DirectoryConflictError with both epochs', async () => {
    const d = await open();
    await seedLayout(d);
    const err = await d.failover('store1', { expectedEpoch: 7 }, 'test').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DirectoryConflictError);
    expect(err).toMatchObject({ expected: 7, actual: 0, message: expect.stringContaining('store store1: epoch is 0, expected 7') });
  });

  it('a retried call changes nothing twice: a create is refused, a state change is a no-op', async () => {
    const d = await open();
    await d.createSlot({ name: 'a', machine: 'm1', ip: '127.0.0.1' }, 'test');
    const err = await d.createSlot({ name: 'a', machine: 'm1', ip: '127.0.0.1' }, 'test').catch((e: unknown) => e);
    expect((err as DirectoryRuleError).rule).toBe('EXISTS');
    await d.setSlotState('a', 'down', 'test');
    await d.setSlotState('a', 'down', 'test');
    expect(await d.version()).toBe(2);
    expect(await rs.client.llen(directoryKeys(prefix).history)).toBe(2);
  });

  it('recovers after SCRIPT FLUSH (NOSCRIPT → EVAL) for mutations, lookups and commits', async () => {
    const d = await open({});
    await seedLayout(d);
    await rs.client.script('FLUSH');
    expect((await d.resolve('alice'))?.master.name).toBe('slot101');
    await rs.client.script('FLUSH');
    expect((await d.failover('store1', {}, 'test')).epoch).toBe(1);
    await rs.client.script('FLUSH');
    const base = await d.snapshot();
    expect(await d.commit({ base, mutations: [{ op: 'deleteUser', name: 'alice' }] }, 'test'))
      .toEqual({ fromVersion: base.version, toVersion: base.version + 1 });
  });

  it('commit.lua: answers the new version; refuses a moved directory, a malformed call and an incomplete staged table, writing nothing', async () => {
    const d = await open();
    await seedLayout(d);
    const { client, s, keys } = scripts();
    const token = 'abcdef0123456789';
    const staged = keys.staging(token);
    const header = (h: Record<string, unknown>) => JSON.stringify({ from: 8, to: 9, historyMax: 100, n: {}, ...h });
    const record = JSON.stringify({ version: 9, at: Date.now(), actor: 'raw', action: 'setSlotState', target: 'slot:slot101', before: null, after: null });
    const slotJson = JSON.stringify({ name: 'slot101', machine: 'imap1', ip: '127.0.1.1', lmtp: 24, imap: 143, pop3: 110, state: 'down' });
    const call = (h: string, ...rest: string[]) => s.commit(keys.commit(token), [keys.channel, h, ...rest])
      .then((v): { ok?: number; err?: string } => ({ ok: v }), (e: Error) => ({ err: e.message }));
    try {
      expect(await rs.client.get(keys.version)).toBe('8');
      expect((await call(header({ from: 7, to: 8, n: { records: 1 } }), record)).err).toMatch(/^SR_CONFLICT 7 8 the directory is at version 8/);
      expect((await call('nope')).err).toMatch(/^SR_ARG header must be a JSON object/);
      expect((await call(header({ n: { slots: 1, records: 1 } }), 'slot101', slotJson)).err).toMatch(/^SR_ARG header counts 5 arguments, got 4/);
      expect((await call(header({ n: { records: 0 } }))).err).toMatch(/^SR_ARG one audit record per version/);
      expect((await call(header({ to: 8 }))).err).toMatch(/^SR_ARG to must be above from/);
      await rs.client.hset(staged.users, 'zed', '{}');
      expect((await call(header({ replace: { users: 2 }, n: { records: 1 } }), record)).err)
        .toMatch(/^SR_ARG staged users holds 1 entries, expected 2 \(expired\?\)/);
      expect(await rs.client.get(keys.version)).toBe('8');
      expect(JSON.parse((await rs.client.hget(keys.slots, 'slot101')) as string).state).toBe('up');
      expect(await rs.client.hlen(keys.users)).toBe(2);

      // Patch slot101, replace users with the staged table, keep userCount whole.
      expect(await call(header({ replace: { users: 1 }, n: { slots: 1, userCount: 1, records: 1 } }),
        'slot101', slotJson, 'store1', '1', record)).toEqual({ ok: 9 });
      expect(await rs.client.get(keys.version)).toBe('9');
      expect(JSON.parse((await rs.client.hget(keys.slots, 'slot101')) as string).state).toBe('down');
      expect(await rs.client.hkeys(keys.users)).toEqual(['zed']);
      expect(await rs.client.pttl(keys.users)).toBe(-1); // the staging TTL did not come along
      expect(await rs.client.exists(staged.users)).toBe(0);
      expect(await rs.client.hgetall(keys.userCount)).toEqual({ store1: '1' });
      expect(await rs.client.lindex(keys.history, 0)).toBe(record);
      // The very same call again (a retry): the directory moved on, so it changes nothing twice.
      expect((await call(header({ n: { slots: 1, records: 1 } }), 'slot101', slotJson, record)).err).toMatch(/^SR_CONFLICT 8 9 /);
      expect(await rs.client.llen(keys.history)).toBe(9);
    } finally {
      client.disconnect();
    }
  });

  it('of 20 concurrent applies planned on one version exactly one commits; the rest apply nothing', async () => {
    // patchLimit 10: each apply stages its users table and history, so the losers' staging is exercised too.
    const config = parseConfig({ directory: { backend: 'redis', redis: { url: rs.server.url, keyPrefix: prefix } } }).directory.redis;
    const handles = await Promise.all(Array.from({ length: 5 }, () => RedisDirectory.open(config, obs(), undefined, { patchLimit: 10 })));
    dirs.push(...handles);
    const first = handles[0] as Directory;
    await seedLayout(first);
    const base = await first.snapshot();
    const results = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => {
      const want = structuredClone(base);
      for (let k = 0; k < 50; k++) want.users[`racer${i}-${k}`] = { name: `racer${i}-${k}`, store: 'store2', state: 'active' };
      return (handles[i % 5] as Directory).commit({ base, mutations: diffDirectory(base, want) }, `racer${i}`);
    }));
    const won = results.filter((r) => r.status === 'fulfilled');
    expect(won).toHaveLength(1);
    for (const r of results) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(DirectoryConflictError);
    const after = await first.snapshot();
    expect(after.version).toBe(base.version + 50);
    const racers = Object.keys(after.users).filter((u) => u.startsWith('racer'));
    expect(racers).toHaveLength(50);
    expect(new Set(racers.map((u) => u.split('-')[0])).size).toBe(1);
    expect(Number(await rs.client.hget(directoryKeys(prefix).userCount, 'store2'))).toBe(51);
    expect(await rs.client.keys(`${prefix}{dir}:apply:*`)).toEqual([]); // the losers' staging is gone
  });

  it('a big apply stages its tables under the one hash tag and leaves no staging keys behind', async () => {
    const d = await RedisDirectory.open(parseConfig({ directory: { backend: 'redis', redis: { url: rs.server.url, keyPrefix: prefix } } })
      .directory.redis, obs(), undefined, { patchLimit: 3 });
    dirs.push(d);
    const users = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`u${i}`, i % 2 ? 'store1' : 'store2']));
    const file = parseDirectoryText(JSON.stringify({
      slots: { a: { machine: 'm1', ip: '127.0.0.1' }, b: { machine: 'm2', ip: '127.0.0.2' }, c: { machine: 'm3', ip: '127.0.0.3' },
        e: { machine: 'm4', ip: '127.0.0.4' } },
      stores: { store1: { slots: ['a', 'b'], preferredMaster: 'a' }, store2: { slots: ['c', 'e'], preferredMaster: 'c' } }, users }), 'f');
    const r = await applyDirectory(d, file, { actor: 'test' });
    expect(r.toVersion).toBe(46);
    const keys = await rs.client.keys(`${prefix}*`);
    for (const k of keys) {
      expect(k.startsWith(`${prefix}{dir}:`)).toBe(true);
      expect(k).not.toContain(':apply:');
      expect(await rs.client.pttl(k)).toBe(-1);
    }
    expect(await rs.client.hgetall(directoryKeys(prefix).userCount)).toEqual({ store1: '20', store2: '20' });
    expect((await d.history(100)).map((h) => h.version)).toEqual(Array.from({ length: 46 }, (_, i) => 46 - i));
  });

  it('of 50 concurrent failovers with the same expected epoch exactly one wins; the epoch rises by one', async () => {
    const handles = await Promise.all(Array.from({ length: 5 }, () => open({})));
    await seedLayout(handles[0] as Directory);
    const results = await Promise.allSettled(Array.from({ length: 50 }, (_, i) =>
      (handles[i % 5] as Directory).failover('store1', { to: 'slot201', expectedEpoch: 0 }, `racer${i}`)));
    const won = results.filter((r) => r.status === 'fulfilled');
    const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(49);
    for (const r of lost) expect(r.reason).toBeInstanceOf(DirectoryConflictError);
    const store = await (handles[0] as Directory).getStore('store1');
    expect(store).toMatchObject({ currentMaster: 'slot201', epoch: 1 });
    const failovers = (await (handles[0] as Directory).history(100)).filter((h) => h.action === 'failover');
    expect(failovers).toHaveLength(1);
  });

  it('caps the audit list at historyLimit, newest first', async () => {
    const d = await open({ historyLimit: 10 });
    await d.createSlot({ name: 'a', machine: 'm1', ip: '127.0.0.1' }, 'test');
    for (let i = 0; i < 7; i++) {
      await d.setSlotState('a', 'down', 'test');
      await d.setSlotState('a', 'up', 'test');
    }
    expect(await rs.client.llen(directoryKeys(prefix).history)).toBe(10);
    const h = await d.history(100);
    expect(h.map((r) => r.version)).toEqual([15, 14, 13, 12, 11, 10, 9, 8, 7, 6]);
  });

  it('keeps every key under one hash tag (Redis Cluster: one hash slot)', async () => {
    const d = await open();
    await seedLayout(d);
    await d.deleteUser('alice', 'test');
    const keys = await rs.client.keys(`${prefix}*`);
    expect(keys.length).toBeGreaterThanOrEqual(5);
    for (const k of keys) expect(k.startsWith(`${prefix}{dir}:`)).toBe(true);
  });
});
