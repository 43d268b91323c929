/**
 * The slot agent against real Cyrus 3.6 slots (no postfix, no storeroute proxy): one store of two
 * slots on two "machines", one agent per machine, commands run as the cyrus user. Replication is
 * paused, mail is delivered over LMTP, and the agent must see the backlog, name the users, flush
 * it over its token-protected HTTP endpoint, repair a dead client's leftovers and start a missing
 * rolling client, and flag records written on the replica as split-brain. Each time the replica's
 * INBOX (read over IMAP) must end up with the mail.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawn } from 'node:child_process';
import { readdirSync, renameSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { CyrusSlot, CYRUS_PORTS } from './stack/cyrus.js';
import { startSyslog, type SyslogCapture } from './stack/syslog.js';
import { makeWorkDir, removeWorkDir } from './stack/workdir.js';
import { sendLmtp, bare } from './stack/mail.js';
import { waitFor } from '../helpers/ports.js';
import { testLogger, testRegistry } from '../helpers/logger.js';
import { parseConfig } from '../../src/config/index.js';
import { startAgent, classifyStore, thresholdsOf, type Agent, type AgentLayout, type AgentReport, type RepairRecord } from '../../src/agent/index.js';
import { scanSyncClients } from '../../src/agent/procs.js';

const NET = process.env.STOREROUTE_E2E_AGENT_NET ?? '127.46';
const ADMIN_PW = 'agent-e2e-admin';
const TOKEN = 'agent-e2e-token-0123456789abcdef';
const BIN = '/usr/lib/cyrus/bin';
/** The agent runs as root here; Cyrus's files must stay the cyrus user's. */
const AS_CYRUS = ['runuser', '-u', 'cyrus', '--'];

describe.sequential('slot agent on real Cyrus slots', () => {
  let dir: string;
  let syslog: SyslogCapture;
  let master: CyrusSlot;
  let replica: CyrusSlot;
  let layout: AgentLayout;
  const agents: Agent[] = [];
  const audited: RepairRecord[] = [];
  let failed = false;

  function config(machine: string, slot: CyrusSlot, repairs: boolean) {
    return parseConfig({ agent: {
      machine, intervalMs: 500, listen: { port: 0 }, token: TOKEN,
      slots: [{ name: slot.name, imapdConf: slot.confFile }],
      repairs: { orphanFiles: repairs, startRollingClient: repairs, timeoutMs: 30_000, backoffMs: 1_000 },
      commands: {
        replayFile: [...AS_CYRUS, `${BIN}/sync_client`, '-C', '{conf}', '-S', '{peer}', '{channelArgs}', '-r', '-f', '{file}'],
        startRollingClient: [...AS_CYRUS, `${BIN}/sync_client`, '-C', '{conf}', '-S', '{peer}', '{channelArgs}', '-r', '-d', '1'],
        queueUser: [...AS_CYRUS, `${BIN}/cyr_synclog`, '-C', '{conf}', '-u', '{user}'],
      },
    } }).agent;
  }

  async function agentFor(machine: string, slot: CyrusSlot, repairs: boolean): Promise<Agent> {
    const a = await startAgent({
      config: config(machine, slot, repairs), obs: { logger: testLogger(), metrics: testRegistry() },
      publish: () => undefined, audit: (r) => { audited.push(r); }, layout: async () => layout,
    });
    agents.push(a);
    return a;
  }

  function deliver(slot: CyrusSlot, user: string, subject: string) {
    return sendLmtp(slot.ip, CYRUS_PORTS.lmtp, { from: 'sender@e2e.test', to: [`${user}@e2e.test`], subject });
  }

  async function onReplica(user: string, ids: string[]): Promise<void> {
    await waitFor(async () => {
      const have = new Set((await replica.inbox(user)).map((m) => bare(m.messageId)));
      return ids.every((id) => have.has(id));
    }, 20_000, `${ids.length} message(s) for ${user} on the replica`);
  }

  function track<T>(p: Promise<T>): Promise<T> {
    return p.catch((err: unknown) => {
      failed = true;
      throw err;
    });
  }

  beforeAll(async () => {
    dir = makeWorkDir('agent');
    syslog = await startSyslog(dir);
    master = new CyrusSlot({ name: 'g11', machine: 'gm1', ip: `${NET}.1.1`, baseDir: dir, adminPassword: ADMIN_PW });
    replica = new CyrusSlot({ name: 'g21', machine: 'gm2', ip: `${NET}.2.1`, baseDir: dir, adminPassword: ADMIN_PW });
    layout = {
      slots: { g11: { machine: 'gm1', ip: master.ip }, g21: { machine: 'gm2', ip: replica.ip } },
      stores: { G: { slots: ['g11', 'g21'], currentMaster: 'g11', state: 'active' } },
    };
    await Promise.all([master.start(), replica.start()]);
    for (const u of ['alice', 'bob']) await master.createMailbox(u);
    // Replicate the new mailboxes, then pause: from here on the agents are the only replicators.
    await master.startReplication(replica);
    await waitFor(async () => (await replica.inbox('bob')) !== null, 20_000, 'the mailboxes on the replica');
    await waitFor(() => readdirSync(join(master.dir, 'conf', 'sync')).length === 0, 20_000, 'the master\'s log to drain');
    await master.stopReplication();
  });

  afterAll(async () => {
    if (failed) console.log(`--- cyrus (syslog) ---\n${syslog?.tail(80)}\n${master?.logTail()}`);
    for (const a of agents) await a.close();
    // The rolling client the agent started runs under PID 1, outside the harness's groups.
    for (const conf of [master?.confFile, replica?.confFile].filter(Boolean) as string[]) {
      for (const p of await scanSyncClients()) if (p.conf === realpathSync(conf)) process.kill(p.pid, 'SIGKILL');
    }
    await master?.stopReplication();
    await Promise.all([master?.stop(), replica?.stop()]);
    await syslog?.close();
    if (dir) removeWorkDir(dir);
  });

  it('sees the backlog of a paused replication, with its users, and flushes it on request', () => track((async () => {
    const gm1 = await agentFor('gm1', master, false);
    const gm2 = await agentFor('gm2', replica, false);
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await deliver(master, 'alice', `agent e2e ${i}`)).messageId);

    const seen = await waitFor(async () => {
      const r = await gm1.measureNow();
      return (r.slots[0]?.pendingBytes ?? 0) > 0 ? r : null;
    }, 5_000, 'pending bytes on the master');
    expect(seen.slots[0]).toMatchObject({ slot: 'g11', status: 'ok', users: ['alice'], rollingClient: { running: false } });
    const reports = new Map([gm1, gm2].map((a) => [(a.report() as AgentReport).slots[0]!.slot, (a.report() as AgentReport).slots[0]!]));
    reports.set('g11', seen.slots[0]!);
    const verdict = classifyStore({ store: 'G', currentMaster: 'g11', slots: ['g11', 'g21'] }, reports, Date.now(), thresholdsOf(config('gm1', master, false)));
    expect(verdict).toMatchObject({ state: 'stalled', splitBrain: [] });
    expect(verdict.master.reasons).toContain('no rolling sync_client is running');
    expect(await (await fetch(`${gm1.url}/metrics`)).text()).toMatch(/storeroute_agent_sync_pending_bytes\{slot="g11"\} [1-9]/);

    const refused = await fetch(`${gm1.url}/ops/flush`, { method: 'POST', body: JSON.stringify({ slot: 'g11' }) });
    expect(refused.status).toBe(401);
    const res = await fetch(`${gm1.url}/ops/flush`, {
      method: 'POST', body: JSON.stringify({ slot: 'g11', deadlineMs: 30_000 }), headers: { authorization: `Bearer ${TOKEN}` },
    });
    const body = await res.json() as { pendingBytesAfter?: number; error?: string };
    expect(res.status, JSON.stringify(body)).toBe(200);
    expect(body.pendingBytesAfter).toBe(0);
    expect(readdirSync(join(master.dir, 'conf', 'sync'))).toEqual([]);
    await onReplica('alice', ids);
  })()));

  it('repairs: replays a dead client\'s log-<PID>, starts the missing rolling client, the store catches up', () => track((async () => {
    for (const a of agents.splice(0)) await a.close();
    const syncDir = join(master.dir, 'conf', 'sync');
    const bob = (await deliver(master, 'bob', 'left by a dead client')).messageId;
    const dead = spawn('true');
    await new Promise((r) => dead.once('exit', r));
    renameSync(join(syncDir, 'log'), join(syncDir, `log-${dead.pid}`));
    const alice = (await deliver(master, 'alice', 'after the crash')).messageId;

    const gm1 = await agentFor('gm1', master, true);
    const caughtUp = await waitFor(async () => {
      const s = (await gm1.measureNow()).slots[0]!;
      return s.pendingBytes === 0 && s.rollingClient.running ? s : null;
    }, 30_000, 'the master to catch up under a started rolling client');
    expect(caughtUp.files).toEqual([]);
    expect(audited.map((r) => `${r.kind}:${r.result}`)).toEqual(expect.arrayContaining(['replay-orphan-file:ok', 'start-rolling-client:ok']));
    expect(audited.find((r) => r.kind === 'replay-orphan-file')?.files).toEqual([`log-${dead.pid}`]);
    await onReplica('bob', [bob]);
    await onReplica('alice', [alice]);
  })()));

  it('records written on the replica are a split-brain warning naming the user', () => track((async () => {
    const gm2 = await agentFor('gm2', replica, true);
    await deliver(replica, 'bob', 'written where it must not be');
    const r = await waitFor(async () => {
      const s = (await gm2.measureNow()).slots[0]!;
      return s.splitBrain ? s : null;
    }, 5_000, 'the split-brain flag');
    expect(r).toMatchObject({ slot: 'g21', users: ['bob'], role: { store: 'G', currentMaster: false } });
    expect(await (await fetch(`${gm2.url}/metrics`)).text()).toMatch(/storeroute_agent_split_brain_pending_bytes\{slot="g21"\} [1-9]/);
    // Never repaired from a non-master: its log stays for a human to look at.
    expect(audited.filter((x) => x.slot === 'g21')).toEqual([]);
    expect(readdirSync(join(replica.dir, 'conf', 'sync'))).toContain('log');
  })()));
});
