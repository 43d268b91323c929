import { describe, it, expect, afterEach } from 'vitest';
import { Counter } from 'prom-client';
import { createAdminServer, type AdminServer } from '../../src/admin/index.js';
import { parseConfig } from '../../src/config/index.js';
import { DirectoryRuleError } from '../../src/core/errors.js';
import { testLogger, testRegistry } from '../helpers/logger.js';

let server: AdminServer | null = null;
afterEach(async () => { await server?.close(); server = null; });

async function start(token: string | undefined, ready = true) {
  const metrics = testRegistry();
  new Counter({ name: 'storeroute_test_things_total', help: 'x', registers: [metrics] }).inc(3);
  const calls: unknown[] = [];
  server = createAdminServer({
    config: parseConfig({ admin: { listen: { port: 0 }, ...(token ? { token } : {}) } }).admin,
    obs: { logger: testLogger(), metrics },
    readiness: [{ name: 'directory', check: async () => ready }, { name: 'journal', check: async () => true }],
    routes: [
      { method: 'POST', path: '/replay', handler: async (body) => { calls.push(body); return { delivered: 1 }; } },
      { method: 'POST', path: '/refuse', handler: async () => { throw new DirectoryRuleError('TARGET_DOWN', 'target slot is down'); } },
    ],
  });
  const { url } = await server.listen();
  return { url, calls };
}

describe('admin API', () => {
  it('serves Prometheus metrics and health without a token', async () => {
    const { url } = await start('s3cret');
    const m = await fetch(`${url}/metrics`);
    expect(m.status).toBe(200);
    expect(await m.text()).toContain('storeroute_test_things_total 3');
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    const r = await fetch(`${url}/readyz`);
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({ ok: true, checks: { directory: true, journal: true } });
  });

  it('is not ready while a check fails', async () => {
    const { url } = await start('s3cret', false);
    const r = await fetch(`${url}/readyz`);
    expect(r.status).toBe(503);
    expect(await r.json()).toMatchObject({ ok: false, checks: { directory: false } });
  });

  it('refuses operator routes without the right bearer token, and runs them with it', async () => {
    const { url, calls } = await start('s3cret');
    expect((await fetch(`${url}/replay`, { method: 'POST', body: '{}' })).status).toBe(401);
    expect((await fetch(`${url}/replay`, { method: 'POST', body: '{}', headers: { authorization: 'Bearer wrong' } })).status).toBe(401);
    expect(calls).toEqual([]);
    const ok = await fetch(`${url}/replay`, { method: 'POST', body: '{"store":"a"}', headers: { authorization: 'Bearer s3cret' } });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ delivered: 1 });
    expect(calls).toEqual([{ store: 'a' }]);
  });

  it('serves no operator route at all when no token is configured', async () => {
    const { url, calls } = await start(undefined);
    expect((await fetch(`${url}/replay`, { method: 'POST', body: '{}', headers: { authorization: 'Bearer ' } })).status).toBe(401);
    expect(calls).toEqual([]);
  });

  it('answers a bad body with 400 and a refused operation with its message', async () => {
    const { url } = await start('t');
    const h = { authorization: 'Bearer t' };
    expect((await fetch(`${url}/replay`, { method: 'POST', body: '{nope', headers: h })).status).toBe(400);
    const big = await fetch(`${url}/replay`, { method: 'POST', body: 'x'.repeat(100_000), headers: h });
    expect(big.status).toBe(413);
    const refused = await fetch(`${url}/refuse`, { method: 'POST', body: '{}', headers: h });
    expect(refused.status).toBe(400);
    expect(await refused.json()).toEqual({ error: 'target slot is down', code: 'DIRECTORY_RULE' });
    expect((await fetch(`${url}/replay`, { headers: h })).status).toBe(405);
  });
});
