/**
 * Status and events on the Redis backend, against a real redis-server: the status hash sits under
 * its own `{status}` tag and a write leaves every `{dir}` key as it was; recordEvent.lua's every
 * reply, a retried call, SCRIPT FLUSH, and events racing mutations with the history checked after.
 */
import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/index.js';
import { statusKey } from '../../src/core/redis-keys.js';
import { createDirectory, directoryKeys, DirectoryUnavailableError, type Directory } from '../../src/directory/index.js';
import { defineScripts, loadScriptSources } from '../../src/directory/redis/scripts.js';
import { uniquePrefix, useRedisServer } from '../helpers/redis.js';
import { testLogger, testRegistry } from '../helpers/logger.js';
import { freePort } from '../helpers/ports.js';
import { seedLayout } from './behaviour.js';

const rs = useRedisServer();

describe('Redis directory: status and events', () => {
  let prefix: string;
  let dirs: Directory[];
  const open = async (extra: Record<string, unknown> = {}, url = rs.server.url) => {
    const d = await createDirectory(parseConfig({ directory: { backend: 'redis', redis: { url, keyPrefix: prefix, ...extra } } }).directory,
      { logger: testLogger(), metrics: testRegistry() });
    dirs.push(d);
    return d;
  };
  beforeEach(() => {
    prefix = uniquePrefix('status');
    dirs = [];
  });
  afterEach(async () => {
    for (const d of dirs) await d.close();
  });

  /** Every {dir} key with its DUMP: what a status write or an event must leave alone (the history aside). */
  async function layoutDump(except: string[] = []): Promise<Record<string, string | null>> {
    const keys = (await rs.client.keys(`${prefix}{dir}:*`)).filter((k) => !except.includes(k)).sort();
    const out: Record<string, string | null> = {};
    for (const k of keys) out[k] = (await rs.client.dumpBuffer(k))?.toString('base64') ?? null;
    return out;
  }

  it('keeps one hash per kind under {status}, and a status write touches no layout key', async () => {
    const d = await open();
    await seedLayout(d);
    const before = await layoutDump();
    await d.publishStatus('agent', 'imap1', { round: 1, empty: [] });
    expect(await rs.client.hgetall(statusKey(prefix, 'agent'))).toEqual({ imap1: '{"round":1,"empty":[]}' });
    expect(await rs.client.keys(`${prefix}{status}*`)).toEqual([`${prefix}{status}:agent`]);
    expect(await layoutDump()).toEqual(before);
  });

  it('leaves out a field that does not parse, and reads the others', async () => {
    const d = await open();
    await d.publishStatus('agent', 'imap1', { round: 1 });
    await rs.client.hset(statusKey(prefix, 'agent'), 'imap2', '{ torn');
    expect(await d.readStatus('agent')).toEqual({ imap1: { round: 1 } });
  });

  it('recordEvent.lua answers each named error from Lua itself, writing nothing', async () => {
    const client = new Redis(rs.server.url);
    const s = defineScripts(client, loadScriptSources());
    const keys = directoryKeys(prefix);
    const call = (body: unknown, max = '100', k = [keys.version, keys.history]) =>
      s.recordEvent(k, [max, typeof body === 'string' ? body : JSON.stringify(body)])
        .then((r): { ok?: [number, number]; err?: string } => ({ ok: r }), (e: Error): { ok?: [number, number]; err?: string } => ({ err: e.message }));
    const good = { actor: 'agent:imap1', action: 'flush', target: 'slot:slot101', before: null, after: null, detail: { files: [] } };
    try {
      expect((await call(good, '0')).err).toMatch(/^SR_ARG historyMax must be an integer >= 1/);
      expect((await call(good, '1.5')).err).toMatch(/^SR_ARG historyMax/);
      expect((await call('not json')).err).toMatch(/^SR_ARG body must be a non-empty JSON object/);
      expect((await call('[1]')).err).toMatch(/^SR_ARG body must be a non-empty JSON object/);
      expect((await call('{}')).err).toMatch(/^SR_ARG body must be a non-empty JSON object/);
      expect((await call({ ...good, version: 3 })).err).toMatch(/^SR_ARG body must not carry version or at/);
      expect((await call({ ...good, at: null })).err).toMatch(/^SR_ARG body must not carry version or at/);
      expect((await call({ ...good, actor: '' })).err).toMatch(/^SR_RULE INVALID_ACTOR /);
      expect((await call({ ...good, actor: 'a'.repeat(201) })).err).toMatch(/^SR_RULE INVALID_ACTOR /);
      expect((await call({ ...good, action: 7 })).err).toMatch(/^SR_RULE INVALID_EVENT event action/);
      expect((await call({ ...good, target: undefined })).err).toMatch(/^SR_RULE INVALID_EVENT event target/);
      await expect(client.eval(loadScriptSources().recordEvent, 1, keys.history, '100', JSON.stringify(good)))
        .rejects.toThrow(/SR_ARG expected 2 keys/);
      expect(await rs.client.exists(keys.history, keys.version)).toBe(0);

      const ok = await call(good);
      expect(ok.ok?.[0]).toBe(0);
      // Spliced in as written: cjson would have turned the empty array into {}.
      expect(JSON.parse(await rs.client.lindex(keys.history, 0) ?? '')).toEqual({ version: 0, at: ok.ok?.[1], ...good });
      expect(await rs.client.exists(keys.version)).toBe(0);
    } finally {
      client.disconnect();
    }
  });

  it('maps a Lua refusal to DirectoryRuleError and Redis being away to DirectoryUnavailableError', async () => {
    const d = await open();
    await expect(d.recordEvent({ actor: 'a'.repeat(201), action: 'x', target: 'y', detail: null })).rejects.toMatchObject({ rule: 'INVALID_ACTOR' });
    const away = await open({ connectTimeoutMs: 200, commandTimeoutMs: 200 }, `redis://127.0.0.1:${await freePort()}`);
    await expect(away.publishStatus('agent', 'imap1', {})).rejects.toBeInstanceOf(DirectoryUnavailableError);
    await expect(away.readStatus('agent')).rejects.toBeInstanceOf(DirectoryUnavailableError);
    await expect(away.recordEvent({ actor: 'agent:imap1', action: 'flush', target: 'slot:s1', detail: null }))
      .rejects.toBeInstanceOf(DirectoryUnavailableError);
  });

  it('records at the current version without bumping it; a retried call records twice (an event is not idempotent), capped at historyLimit', async () => {
    const d = await open({ historyLimit: 10 });
    await seedLayout(d);
    const keys = directoryKeys(prefix);
    const before = await layoutDump([keys.history]);
    const event = { actor: 'agent:imap1', action: 'replay-orphan-file', target: 'slot:slot101', detail: { result: 'ok', detail: 'replayed' } };
    await d.recordEvent(event);
    await d.recordEvent(event);
    expect(await layoutDump([keys.history])).toEqual(before);
    const history = await d.history(10);
    expect(history.slice(0, 2).map((r) => [r.version, r.action])).toEqual([[8, 'replay-orphan-file'], [8, 'replay-orphan-file']]);
    for (let i = 0; i < 12; i++) await d.recordEvent(event);
    expect(await rs.client.llen(keys.history)).toBe(10);
  });

  it('recovers after SCRIPT FLUSH (NOSCRIPT → EVAL)', async () => {
    const d = await open();
    await d.recordEvent({ actor: 'agent:imap1', action: 'flush', target: 'slot:s1', detail: 1 });
    await rs.client.script('FLUSH');
    expect(await d.recordEvent({ actor: 'agent:imap1', action: 'flush', target: 'slot:s1', detail: 2 })).toMatchObject({ version: 0, detail: 2 });
    expect((await d.history(5)).map((r) => r.detail)).toEqual([2, 1]);
  });

  it('20 events racing 20 mutations: every record is in the history, each at a version its neighbours allow', async () => {
    const a = await open({ historyLimit: 1_000 });
    const b = await open({ historyLimit: 1_000 });
    await seedLayout(a);
    const start = await a.version();
    await Promise.all([
      ...Array.from({ length: 20 }, (_, i) => b.recordEvent({ actor: 'agent:imap1', action: 'flush', target: 'slot:slot101', detail: i })),
      ...Array.from({ length: 20 }, (_, i) => a.setSlotState('slot201', i % 2 === 0 ? 'down' : 'up', 'racer')),
    ]);
    expect(await a.version()).toBe(start + 20);
    const history = (await a.history(1_000)).slice(0, 40).reverse(); // oldest first
    expect(history.filter((r) => r.action === 'flush').map((r) => r.detail).sort((x, y) => Number(x) - Number(y)))
      .toEqual(Array.from({ length: 20 }, (_, i) => i));
    // An event carries the version in force when it was appended: the last mutation's before it.
    let version = start;
    for (const r of history) {
      if (r.action === 'setSlotState') version = r.version;
      expect(r.version).toBe(version);
    }
  });
});
