/**
 * The Lua scripts against a real redis-server, below the typed wrapper where needed: every reply
 * kind, a retried call, SCRIPT FLUSH, 50 racing failovers, the capped audit list, key layout.
 */
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/index.js';
import {
  createDirectory, DirectoryConflictError, DirectoryRuleError, DirectoryUnavailableError, directoryKeys, type Directory,
} from '../../src/directory/index.js';
import { defineScripts, loadScriptSources } from '../../src/directory/redis/scripts.js';
import { startRedis, uniquePrefix, type RedisServer } from '../helpers/redis.js';
import { testLogger, testRegistry } from '../helpers/logger.js';
import { seedLayout } from './behaviour.js';

let redis: RedisServer;
let raw: Redis;
beforeAll(async () => {
  redis = await startRedis();
  raw = new Redis(redis.url);
});
afterAll(async () => {
  raw.disconnect();
  await redis.close();
});

const obs = () => ({ logger: testLogger(), metrics: testRegistry() });

describe('directory Lua scripts', () => {
  let prefix: string;
  let dirs: Directory[];
  const open = async (extra: Record<string, unknown> = {}) => {
    const d = await createDirectory(parseConfig({ directory: { backend: 'redis',
      redis: { url: redis.url, keyPrefix: prefix, ...extra } } }).directory, obs());
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
    const client = new Redis(redis.url);
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
      await expect(client.eval(common, 1, keys.version, keys.channel, 'test', '100', '{}')).rejects.toThrow(/SR_ARG expected 6 keys/);
      expect(await raw.get(keys.version)).toBe('1');
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
      await raw.hset(keys.users, 'carol', '{ "name": "carol", "state": "active", "store": "store2" }');
      expect((await d.resolve('carol'))?.master.name).toBe('slot301');
      // A user whose store vanished (written around the scripts): inconsistent, so transient —
      // never "unknown user", which would bounce the mail.
      await raw.hset(keys.users, 'dave', JSON.stringify({ name: 'dave', store: 'gone', state: 'active' }));
      expect(await s.resolve(keys.read, 'dave')).toBe(-1);
      await expect(d.resolve('dave')).rejects.toBeInstanceOf(DirectoryUnavailableError);
      // No version key: this Redis holds no directory (lost its data, wrong db or prefix): 0, and
      // resolve() raises DirectoryUnavailableError for known and unknown names alike.
      await raw.del(keys.version);
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
    expect(await raw.llen(directoryKeys(prefix).history)).toBe(2);
  });

  it('recovers after SCRIPT FLUSH (NOSCRIPT → EVAL) for mutations and lookups', async () => {
    const d = await open({});
    await seedLayout(d);
    await raw.script('FLUSH');
    expect((await d.resolve('alice'))?.master.name).toBe('slot101');
    await raw.script('FLUSH');
    expect((await d.failover('store1', {}, 'test')).epoch).toBe(1);
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
    expect(await raw.llen(directoryKeys(prefix).history)).toBe(10);
    const h = await d.history(100);
    expect(h.map((r) => r.version)).toEqual([15, 14, 13, 12, 11, 10, 9, 8, 7, 6]);
  });

  it('keeps every key under one hash tag (Redis Cluster: one hash slot)', async () => {
    const d = await open();
    await seedLayout(d);
    await d.deleteUser('alice', 'test');
    const keys = await raw.keys(`${prefix}*`);
    expect(keys.length).toBeGreaterThanOrEqual(5);
    for (const k of keys) expect(k.startsWith(`${prefix}{dir}:`)).toBe(true);
  });
});
