import { describe, it, expect, afterEach } from 'vitest';
import { Counter } from 'prom-client';
import { createAdminServer, type AdminServer } from '../../src/admin/index.js';
import { parseConfig } from '../../src/config/index.js';
import {
  BackendError, DeadlineError, DirectoryConflictError, DirectoryNotFoundError, DirectoryRuleError, DirectoryUnavailableError,
  JournalUnavailableError,
} from '../../src/core/errors.js';
import { parseReplayRequest } from '../../src/replay/index.js';
import { testLogger, testRegistry } from '../helpers/logger.js';

let server: AdminServer | null = null;
/** Routes that fail the way an operator route can, by path: /fail/<name>. */
const failures: Record<string, () => unknown> = {
  journal: () => new JournalUnavailableError('another replay is running on this journal'),
  backendTimeout: () => new BackendError('BACKEND_TIMEOUT', 'slot2a', 'no greeting within 300 ms'),
  deadline: () => new DeadlineError('replay', 1000),
  directory: () => new DirectoryUnavailableError('directory get failed: connection refused'),
  notFound: () => new DirectoryNotFoundError('store', 'store9'),
  conflict: () => new DirectoryConflictError('store store1 changed', { expected: 3, actual: 4 }),
  bug: () => new TypeError('x is undefined'),
};
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
      // What POST /replay does first (main.ts): a request missing its store is the caller's to fix.
      { method: 'POST', path: '/validate', handler: async (body) => parseReplayRequest(body) },
      ...Object.entries(failures).map(([name, make]) => ({ method: 'POST' as const, path: `/fail/${name}`,
        handler: async () => { throw make(); } })),
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

  it('answers a failure on our side with 503 and its code, never a 400 (issue 12)', async () => {
    const { url } = await start('t');
    const post = async (path: string) => {
      const r = await fetch(`${url}${path}`, { method: 'POST', body: '{}', headers: { authorization: 'Bearer t' } });
      return { status: r.status, body: await r.json() as unknown };
    };
    expect(await post('/fail/journal')).toEqual({ status: 503,
      body: { error: 'another replay is running on this journal', code: 'JOURNAL_UNAVAILABLE' } });
    expect(await post('/fail/backendTimeout')).toEqual({ status: 503,
      body: { error: 'no greeting within 300 ms', code: 'BACKEND_TIMEOUT' } });
    expect(await post('/fail/deadline')).toEqual({ status: 503,
      body: { error: 'replay did not finish within 1000 ms', code: 'DEADLINE_EXCEEDED' } });
    expect(await post('/fail/directory')).toEqual({ status: 503,
      body: { error: 'directory get failed: connection refused', code: 'DIRECTORY_UNAVAILABLE' } });
    expect(await post('/fail/bug')).toEqual({ status: 500, body: { error: 'x is undefined', code: 'INTERNAL_ERROR' } });
  });

  it('answers a request the caller must change with a 4xx: invalid 400, unknown 404, lost race 409', async () => {
    const { url } = await start('t');
    const h = { authorization: 'Bearer t' };
    const invalid = await fetch(`${url}/validate`, { method: 'POST', body: '{"dryRun":"yes"}', headers: h });
    expect(invalid.status).toBe(400);
    const body = await invalid.json() as { error: string; code: string };
    expect(body.code).toBe('CONFIG_INVALID');
    expect(body.error).toMatch(/^replay request: 2 problem\(s\)\n {2}store: /);
    expect(body.error).toContain('\n  dryRun: ');
    const valid = await fetch(`${url}/validate`, { method: 'POST', body: '{"store":"store1"}', headers: h });
    expect(valid.status).toBe(200);
    const notFound = await fetch(`${url}/fail/notFound`, { method: 'POST', body: '{}', headers: h });
    expect(notFound.status).toBe(404);
    expect(await notFound.json()).toEqual({ error: 'store "store9" does not exist', code: 'DIRECTORY_NOT_FOUND' });
    const conflict = await fetch(`${url}/fail/conflict`, { method: 'POST', body: '{}', headers: h });
    expect(conflict.status).toBe(409);
    expect(await conflict.json()).toEqual({ error: 'store store1 changed', code: 'DIRECTORY_CONFLICT' });
  });
});
