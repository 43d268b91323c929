import { describe, it, expect, afterEach } from 'vitest';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startAgent, requestAgentOp, type Agent, type AgentReport, type RepairRecord } from '../../src/agent/index.js';
import { freePort } from '../helpers/ports.js';
import { AgentError } from '../../src/agent/errors.js';
import { testLogger, testRegistry } from '../helpers/logger.js';
import { makeSlot, type TmpSlot } from './helpers.js';
import { agentConfig, MASTER_LAYOUT, REPLICA_LAYOUT } from './context.js';

const TOKEN = 'agent-test-token-0123456789';
let agent: Agent | undefined;
let slot: TmpSlot | undefined;
afterEach(async () => {
  await agent?.close();
  agent = undefined;
  slot?.cleanup();
});

async function start(agentOverrides: Record<string, unknown> = {}, layout = MASTER_LAYOUT) {
  slot = makeSlot();
  const published: AgentReport[] = [];
  const audited: RepairRecord[] = [];
  const replica = join(slot.root, 'replica.log');
  const config = agentConfig(slot, {
    intervalMs: 60_000, listen: { port: 0 }, token: TOKEN,
    repairs: { startRollingClient: false },
    commands: { replayFile: ['/bin/sh', '-c', 'cat "$1" >> "$2"', 'sh', '{file}', replica] },
    ...agentOverrides,
  });
  agent = await startAgent({
    config, obs: { logger: testLogger(), metrics: testRegistry() },
    publish: (r) => { published.push(r); }, audit: (r) => { audited.push(r); }, layout: async () => layout,
  });
  return { published, audited, slot, agent };
}

function post(path: string, body: unknown, token?: string) {
  return fetch(`${agent?.url}${path}`, {
    method: 'POST', body: typeof body === 'string' ? body : JSON.stringify(body),
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
  });
}

describe('startAgent', () => {
  it('publishes a report at start and on every round, and exports the metrics', async () => {
    const { published, slot: s, agent: a } = await start();
    expect(published).toHaveLength(1);
    expect(published[0]).toMatchObject({ version: 1, machine: 'm1', slots: [{ slot: 's1', pendingBytes: 0, role: { store: 'A', currentMaster: true } }] });
    writeFileSync(join(s.syncDir, 'log'), 'APPEND user.alice\nMAILBOX user.alice\n');
    const r = await a.measureNow();
    expect(r.slots[0]).toMatchObject({ pendingBytes: 37, users: ['alice'], splitBrain: false, rollingClient: { running: false } });
    const metrics = await (await fetch(`${a.url}/metrics`)).text();
    expect(metrics).toContain('storeroute_agent_sync_pending_bytes{slot="s1"} 37');
    expect(metrics).toContain('storeroute_agent_sync_client_running{slot="s1"} 0');
    expect(metrics).toMatch(/storeroute_agent_sync_oldest_pending_seconds\{slot="s1"\} \d/);
    const health = await fetch(`${a.url}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ ok: true, machine: 'm1', slots: ['s1'] });
  });

  it('pending records on a slot that is not its store\'s master: split-brain in the report and the metrics', async () => {
    const { slot: s, agent: a } = await start({}, REPLICA_LAYOUT);
    writeFileSync(join(s.syncDir, 'log'), 'APPEND user.bob\n');
    const r = await a.measureNow();
    expect(r.slots[0]).toMatchObject({ splitBrain: true, users: ['bob'], role: { currentMaster: false } });
    expect(await (await fetch(`${a.url}/metrics`)).text()).toContain('storeroute_agent_split_brain_pending_bytes{slot="s1"} 16');
  });

  it('refuses to start on a missing imapd.conf, an unknown or misplaced slot, or no machine name', async () => {
    slot = makeSlot();
    const base = { obs: { logger: testLogger(), metrics: testRegistry() }, publish: () => undefined };
    const attempt = async (config: ReturnType<typeof agentConfig>, layout = MASTER_LAYOUT) => {
      const err = await startAgent({ ...base, config, layout: async () => layout }).then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(AgentError);
      return err as AgentError;
    };
    const missing = await attempt(agentConfig(slot, { slots: [{ name: 's1', imapdConf: join(slot.root, 'nope.conf') }] }));
    expect(missing).toMatchObject({ code: 'IMAPD_CONF_UNREADABLE', facts: { slot: 's1' } });
    expect(missing.message).toMatch(/^slot s1: cannot read/);
    expect((await attempt(agentConfig(slot, { slots: [{ name: 'zz', imapdConf: slot.conf }] }))).code).toBe('AGENT_SLOT_UNKNOWN');
    expect((await attempt(agentConfig(slot, { machine: 'm2' }))).code).toBe('AGENT_SLOT_ELSEWHERE');
    expect((await attempt(agentConfig(slot, { machine: undefined }))).code).toBe('AGENT_CONFIG_INVALID');
  });
});

describe('the agent HTTP endpoint', () => {
  it('refuses operations and the report without the right token, changing nothing', async () => {
    const { slot: s, agent: a } = await start();
    writeFileSync(join(s.syncDir, 'log'), 'APPEND user.alice\n');
    for (const token of [undefined, 'wrong-token']) {
      const res = await post('/ops/flush', { slot: 's1' }, token);
      expect(res.status).toBe(401);
      expect(await res.json()).toMatchObject({ code: 'UNAUTHORIZED' });
      expect((await post('/ops/no-such-op', {}, token)).status).toBe(401);
    }
    expect((await fetch(`${a.url}/report`)).status).toBe(401);
    expect(existsSync(join(s.syncDir, 'log'))).toBe(true);
  });

  it('with the token: unknown operation 404, bad arguments 400, a flush 200 once the log is empty, audited', async () => {
    const { slot: s, audited, agent: a } = await start();
    writeFileSync(join(s.syncDir, 'log'), 'APPEND user.alice\n');
    const unknown = await post('/ops/rm', { slot: 's1' }, TOKEN);
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toMatchObject({ code: 'OP_UNKNOWN', facts: { allowed: expect.arrayContaining(['flush', 'sync-user']) } });
    const bad = await post('/ops/synclog-user', { slot: 's1', user: '--help' }, TOKEN);
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ code: 'OP_BAD_ARGUMENT' });
    expect((await post('/ops/flush', 'not json', TOKEN)).status).toBe(400);
    expect((await fetch(`${a.url}/ops/flush`, { headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(405);

    const flushed = await post('/ops/flush', { slot: 's1', deadlineMs: 5_000 }, TOKEN);
    expect(flushed.status).toBe(200);
    expect(await flushed.json()).toMatchObject({ op: 'flush', slot: 's1', pendingBytesBefore: 18, pendingBytesAfter: 0 });
    expect(audited).toEqual([expect.objectContaining({ kind: 'flush', slot: 's1', result: 'ok' })]);
    const report = await fetch(`${a.url}/report`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(report.status).toBe(200);
    expect(await report.json()).toMatchObject({ machine: 'm1' });
  });

  it('with no token configured, every operation is refused', async () => {
    await start({ token: undefined });
    const res = await post('/ops/flush', { slot: 's1' }, 'anything');
    expect(res.status).toBe(401);
    expect((await res.json() as { error: string }).error).toMatch(/agent.token is not set/);
  });
});

describe('requestAgentOp (the control plane\'s client)', () => {
  it('answers with the result, maps refusals to the agent\'s codes, fails fast when no agent runs', async () => {
    const { slot: s, agent: a } = await start();
    writeFileSync(join(s.syncDir, 'log'), 'APPEND user.alice\n');
    const ok = await requestAgentOp({ url: a.url, token: TOKEN, timeoutMs: 5_000 }, 'flush', { slot: 's1' });
    expect(ok).toMatchObject({ op: 'flush', pendingBytesAfter: 0 });
    const bad = await requestAgentOp({ url: a.url, token: TOKEN, timeoutMs: 5_000 }, 'synclog-user', { slot: 's1', user: '-x' }).catch((e: AgentError) => e);
    expect(bad).toMatchObject({ code: 'OP_BAD_ARGUMENT' });
    const denied = await requestAgentOp({ url: a.url, token: 'wrong', timeoutMs: 5_000 }, 'flush', { slot: 's1' }).catch((e: AgentError) => e);
    expect(denied).toMatchObject({ code: 'AGENT_UNAUTHORIZED' });

    const started = Date.now();
    const down = await requestAgentOp({ url: `http://127.0.0.1:${await freePort()}`, token: TOKEN, timeoutMs: 10_000 }, 'flush', { slot: 's1' })
      .catch((e: AgentError) => e);
    expect(down).toMatchObject({ code: 'AGENT_UNREACHABLE', facts: { errno: 'ECONNREFUSED' } });
    expect(Date.now() - started).toBeLessThan(2_000);
  });
});
