/**
 * Issue #13: "has the replica caught up?" on the whole stack, asked the way an operator asks it.
 * Its own stack (see ./stack/index.ts) on its own loopback net, two `storeroute agent` child
 * processes (m1: s11 s12, m2: s21 s22) reporting to the stack's Redis every second, and
 * `storeroute status --json` / `history` / `store show` read with the agents' config (so "stale"
 * means 3 × 1 s, not the default 3 × 5 s). Mail goes in through postfix, and the replicas are read
 * back over IMAP, counted by Message-ID.
 *
 * Cyrus 3.6.1 behaviour the scenarios run into (seen here): the harness's rolling sync_client
 * exits when its replica goes away, leaving `log-run`; one started while the replica is down stays
 * alive and retries after 15 s, 30 s …; `sync_client -r -f` with the replica down retries for
 * minutes (the agent kills it at repairs.timeoutMs, 5 s here).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { readdirSync, realpathSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { startStack, stopStack, type Stack, type Sent } from './stack/index.js';
import { AgentProcess, killSyncClientsUnder, slotGauge, syncClientsUnder } from './stack/agent.js';
import { runCli } from './stack/storeroute.js';
import type { CyrusSlot } from './stack/cyrus.js';
import { waitFor } from '../helpers/ports.js';
import { testLogger, testRegistry } from '../helpers/logger.js';
import { parseConfig } from '../../src/config/index.js';
import { createDirectory, type Directory, type DirectorySnapshot } from '../../src/directory/index.js';
import { readReplication, replicationOf, type StoreReplication } from '../../src/cli/replication.js';

/** Not 127.42 (scenarios.test.ts), .43 (harness), .44 (replay), .46 (agent), .48/.49 (check). */
const NET = process.env.STOREROUTE_E2E_REPLICATION_NET ?? '127.45';
const INTERVAL = 1_000;
/** staleAfterIntervals is left at its default (3). */
const STALE_AFTER = 3 * INTERVAL;
const TOKEN = 'replication-e2e-token-0123456789';

let stack: Stack;
let agents: { m1: AgentProcess; m2: AgentProcess };
let dir: Directory;
let layout: DirectorySnapshot;
let failed = false;
const agentConfig = parseConfig({ agent: { intervalMs: INTERVAL } }).agent;

beforeAll(() => scenario(async () => {
  stack = await startStack({ net: NET, tag: 'replication' });
  const { s11, s12, s21, s22 } = stack.slots;
  const common = { dir: join(stack.dir, 'agents'), directory: stack.storeroute.directoryConfig, intervalMs: INTERVAL, token: TOKEN };
  agents = {
    m1: new AgentProcess({ ...common, machine: 'm1', slots: [s11, s12] }),
    m2: new AgentProcess({ ...common, machine: 'm2', slots: [s21, s22] }),
  };
  await Promise.all([agents.m1.start(), agents.m2.start()]);
  const config = parseConfig({ directory: { ...stack.storeroute.directoryConfig, cache: { enabled: false } } });
  dir = await createDirectory(config.directory, { logger: testLogger(), metrics: testRegistry() });
  layout = await dir.snapshot();
})());

afterAll(async () => {
  if (failed && agents) console.log(`--- agent m1 ---\n${agents.m1.logTail(60)}\n--- agent m2 ---\n${agents.m2.logTail(60)}`);
  const quiet = (p: Promise<unknown> | undefined) => p?.catch((err: unknown) => console.log(`replication teardown: ${String(err)}`));
  await quiet(agents?.m1.stop());
  await quiet(agents?.m2.stop());
  await quiet(dir?.close());
  // The rolling clients the agents started live under PID 1, outside the stack's process groups.
  if (stack) await quiet(killSyncClientsUnder(stack.dir));
  await stopStack(stack, failed);
});

function scenario(body: () => Promise<void>): () => Promise<void> {
  return () => body().catch((err: unknown) => {
    failed = true;
    throw err;
  });
}

interface StatusJson {
  replication: Array<{ store: string; state: string; currentMaster: string; master: { pendingBytes: number | null; reasons: string[] } }>;
  agents: Array<{ machine: string; stale: boolean; slots: string[] }>;
}

interface HistoryRecord {
  actor: string;
  action: string;
  target: string;
  detail: { result?: string; detail?: string; files?: string[] };
}

async function cli(args: string[]): Promise<string> {
  const r = await runCli(agents.m1.configFile, args, { cwd: stack.dir, timeoutMs: 30_000 });
  if (r.code !== 0) throw new Error(`storeroute ${args.join(' ')} exited ${r.code}\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

/** `storeroute status --json`, read with the agents' config. */
async function status(): Promise<StatusJson> {
  return JSON.parse(await cli(['status', '--json'])) as StatusJson;
}

function storeIn(st: StatusJson, store: string) {
  const v = st.replication.find((r) => r.store === store);
  if (!v) throw new Error(`store ${store} is not in status: ${JSON.stringify(st.replication)}`);
  return v;
}

async function history(): Promise<HistoryRecord[]> {
  return JSON.parse(await cli(['history', '--json', '--limit', '200'])) as HistoryRecord[];
}

/** What `status` would say now, without a CLI start-up: the directory's status and the same classification. */
async function verdict(store: string, now = Date.now()): Promise<StoreReplication> {
  const v = replicationOf(await readReplication(dir, agentConfig, now), layout).find((r) => r.store === store);
  if (!v) throw new Error(`store ${store} is not in the directory`);
  return v;
}

/** Bytes in the slot's sync log files (`log`, `log-*`), read straight from its directory. */
function pendingOnDisk(slot: CyrusSlot): number {
  const syncDir = join(slot.dir, 'conf', 'sync');
  let total = 0;
  for (const name of readdirSync(syncDir)) {
    if (name !== 'log' && !name.startsWith('log-')) continue;
    try {
      total += statSync(join(syncDir, name)).size;
    } catch {
      // Consumed between readdir and stat.
    }
  }
  return total;
}

/**
 * Polls the master's sync directory and the store's verdict side by side (every 25 ms) and keeps
 * when pending records first appeared on disk, when the verdict first stopped being caught-up,
 * and every state it went through.
 */
function watchStore(store: string, master: CyrusSlot) {
  const seen: { firstOnDisk: number | null; firstNotCaughtUp: number | null; states: string[]; last: StoreReplication | null } = {
    firstOnDisk: null, firstNotCaughtUp: null, states: [], last: null,
  };
  let stopping = false;
  let error: unknown = null;
  const loop = (async () => {
    while (!stopping) {
      try {
        if (seen.firstOnDisk === null && pendingOnDisk(master) > 0) seen.firstOnDisk = Date.now();
        const v = await verdict(store);
        seen.last = v;
        if (seen.firstNotCaughtUp === null && v.state !== 'caught-up' && (v.master.pendingBytes ?? 0) > 0) seen.firstNotCaughtUp = Date.now();
        if (seen.states.at(-1) !== v.state) seen.states.push(v.state);
      } catch (err) {
        error = err;
        return;
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  })();
  return {
    seen,
    /** Resolves with the first verdict `pred` accepts. */
    until(pred: (v: StoreReplication) => boolean, ms: number, what: string): Promise<StoreReplication> {
      return waitFor(() => {
        if (error) throw error;
        return seen.last && pred(seen.last) ? seen.last : null;
      }, ms, what);
    },
    async stop() {
      stopping = true;
      await loop;
      if (error) throw error;
      return seen;
    },
  };
}

/** Sends `n` messages through postfix, round-robin over `users`, and waits until they are all on `master`. */
async function deliver(users: string[], n: number, tag: string, master: CyrusSlot): Promise<Sent[]> {
  const sent: Sent[] = [];
  for (let i = 0; i < n; i++) {
    const user = users[i % users.length] as string;
    sent.push({ user, messageId: (await stack.send([user], `${tag} ${i} for ${user}`)).messageId });
  }
  await stack.waitQueueEmpty();
  for (const user of users) await stack.waitFor(master, user, sent.filter((s) => s.user === user).map((s) => s.messageId));
  return sent;
}

/** Every message is on `slot` exactly once (read over IMAP, counted by Message-ID). */
async function expectOnceOn(slot: CyrusSlot, sent: Sent[]): Promise<void> {
  for (const user of new Set(sent.map((s) => s.user))) {
    const ids = sent.filter((s) => s.user === user).map((s) => s.messageId);
    const counts = await stack.waitFor(slot, user, ids, 30_000);
    const wrong = ids.filter((id) => counts.get(id) !== 1).map((id) => `${id}×${counts.get(id) ?? 0}`);
    expect(wrong, `${user} on ${slot.name}: not there exactly once`).toEqual([]);
  }
}

async function waitState(store: string, state: string, ms: number): Promise<StatusJson> {
  let last: StatusJson | null = null;
  try {
    return await waitFor(async () => {
      last = await status();
      return storeIn(last, store).state === state ? last : null;
    }, ms, `store ${store} ${state} in status --json`);
  } catch (err) {
    throw new Error(`${String(err)}\nlast status: ${JSON.stringify(last && storeIn(last, store))}`);
  }
}

describe.sequential('replication state with two agents on the stack', () => {
  it('1. at rest every store is caught-up, and both agents report every slot of their machine', scenario(async () => {
    const st = await waitFor(async () => {
      const s = await status();
      return s.replication.length === 2 && s.replication.every((r) => r.state === 'caught-up') ? s : null;
    }, 30_000, 'every store caught-up');
    expect(st.replication.map((r) => [r.store, r.state, r.currentMaster, r.master.pendingBytes]))
      .toEqual([['A', 'caught-up', 's11', 0], ['B', 'caught-up', 's22', 0]]);
    expect(st.agents).toEqual([
      expect.objectContaining({ machine: 'm1', stale: false, slots: ['s11', 's12'] }),
      expect.objectContaining({ machine: 'm2', stale: false, slots: ['s21', 's22'] }),
    ]);
    const shown = JSON.parse(await cli(['store', 'show', 'A', '--json'])) as { replication: { state: string; slots: Array<{ slot: string; role: string; sync: string }> } };
    expect(shown.replication.state).toBe('caught-up');
    expect(shown.replication.slots.map((s) => [s.slot, s.role, s.sync])).toEqual([['s11', 'master', 'caught-up'], ['s21', 'replica', 'empty']]);
  }));

  it('2. replica stopped, 20 messages through postfix: A is no longer caught-up within two intervals (pending bytes in status and /metrics), lagging under the restarted client, caught-up with all 20 on the replica once it is back', scenario(async () => {
    const { s11, s21 } = stack.slots;
    await s21.stop();
    const watch = watchStore('A', s11);
    const sent = await deliver(['alice', 'bob'], 20, 'r2', s11);

    // Seen within two intervals of the first record on disk: lagging while the harness's client
    // lives, stalled once it has died with its replica (leaving log-run and no client).
    await waitFor(() => watch.seen.firstNotCaughtUp, 2 * INTERVAL + 1_000, 'A not caught-up');
    const first = watch.seen.last as StoreReplication;
    expect(['lagging', 'behind', 'stalled']).toContain(first.state);
    expect(first.master.pendingBytes).toBeGreaterThan(0);
    // The first sighting may come before the second user's records are written: named users are
    // ours, and both are named once all 20 are in.
    expect(first.master.users.length).toBeGreaterThan(0);
    expect(['alice', 'bob']).toEqual(expect.arrayContaining(first.master.users));
    expect((watch.seen.firstNotCaughtUp as number) - (watch.seen.firstOnDisk as number)).toBeLessThanOrEqual(2 * INTERVAL);
    await waitFor(async () => {
      const v = await verdict('A', Date.now());
      return v.master.users.includes('alice') && v.master.users.includes('bob');
    }, 2 * INTERVAL + 1_000, 'both users named in the pending records');

    // The agent's repairs: the log-run replay cannot finish with the replica down (killed at its
    // deadline), then a rolling client is started, which waits for the replica: lagging again.
    const repairs = await waitFor(async () => {
      const mine = (await history()).filter((r) => r.actor === 'agent:m1' && r.target === 'slot:s11');
      return mine.some((r) => r.action === 'start-rolling-client' && r.detail.result === 'ok') ? mine : null;
    }, 30_000, 'a start-rolling-client event by agent:m1 in the history');
    expect(repairs.map((r) => `${r.action}:${r.detail.result}`)).toContain('replay-orphan-file:timeout');
    await watch.until((v) => v.state === 'lagging' || v.state === 'behind', 2 * INTERVAL + 1_000, 'A lagging or behind under the new client');
    const seen = await watch.stop();
    console.log(`e2e replication 2: pending on disk → not caught-up in ${(seen.firstNotCaughtUp ?? NaN) - (seen.firstOnDisk ?? NaN)} ms; `
      + `states ${seen.states.join(' → ')}; repairs ${repairs.map((r) => `${r.action}:${r.detail.result}`).reverse().join(', ')}`);

    const st = storeIn(await status(), 'A');
    expect(['lagging', 'behind']).toContain(st.state);
    expect(st.master.pendingBytes).toBeGreaterThan(0);
    expect(slotGauge(await agents.m1.metrics(), 'storeroute_agent_sync_pending_bytes', 's11')).toBeGreaterThan(0);
    expect(slotGauge(await agents.m1.metrics(), 'storeroute_agent_sync_client_running', 's11')).toBe(1);
    // The other store is not disturbed.
    expect(storeIn(await status(), 'B').state).toBe('caught-up');

    const back = Date.now();
    await s21.start();
    await waitState('A', 'caught-up', 60_000);
    console.log(`e2e replication 2: replica back → caught-up in ${Date.now() - back} ms`);
    expect(pendingOnDisk(s11)).toBe(0);
    expect(slotGauge(await agents.m1.metrics(), 'storeroute_agent_sync_pending_bytes', 's11')).toBe(0);
    await expectOnceOn(s21, sent);
  }));

  it('3. the rolling client paused then killed with records pending: the agent starts one (in the history) and B catches up', scenario(async () => {
    const { s22, s12 } = stack.slots;
    const conf = realpathSync(s22.confFile);
    const [client, ...others] = (await syncClientsUnder(stack.dir)).filter((p) => p.rolling && p.conf === conf);
    expect(client, 'the harness\'s rolling client for s22').toBeDefined();
    expect(others).toEqual([]);
    const pid = (client as { pid: number }).pid;
    const startsBefore = (await history()).filter((r) => r.actor === 'agent:m2' && r.action === 'start-rolling-client').length;

    process.kill(pid, 'SIGSTOP');
    const sent = await deliver(['carol', 'dave'], 6, 'r3', s22);
    expect(pendingOnDisk(s22)).toBeGreaterThan(0);
    // Paused, the client still counts as running: the store is lagging, not stalled (yet).
    const paused = await waitFor(async () => {
      const v = await verdict('B');
      return v.master.users.length === 2 ? v : null;
    }, 2 * INTERVAL + 1_000, 'B\'s pending records naming carol and dave');
    expect(paused).toMatchObject({ state: 'lagging', master: { users: ['carol', 'dave'] } });

    process.kill(pid, 'SIGKILL');
    const killed = Date.now();
    const repairs = await waitFor(async () => {
      const mine = (await history()).filter((r) => r.actor === 'agent:m2' && r.target === 'slot:s22');
      return mine.filter((r) => r.action === 'start-rolling-client').length > startsBefore ? mine : null;
    }, 30_000, 'a start-rolling-client event by agent:m2 in the history');
    expect(repairs.find((r) => r.action === 'start-rolling-client')?.detail).toMatchObject({ result: 'ok', detail: 'started a rolling sync_client' });
    await waitState('B', 'caught-up', 30_000);
    console.log(`e2e replication 3: kill → caught-up in ${Date.now() - killed} ms; repairs ${repairs.map((r) => `${r.action}:${r.detail.result}`).join(', ')}`);
    const now = (await syncClientsUnder(stack.dir)).filter((p) => p.rolling && p.conf === conf);
    expect(now.map((p) => p.pid)).not.toContain(pid);
    expect(now).toHaveLength(1);
    await expectOnceOn(s12, sent);
  }));

  it('4. an agent stopped (SIGTERM) past the staleness limit: its machine\'s stores read unknown, never caught-up', scenario(async () => {
    expect(await agents.m2.stop()).toBe(0);
    const last = ((await dir.readStatus('agent')).m2 as { measuredAt: number }).measuredAt;
    // Sampled until two intervals past the limit: every read past it is unknown.
    const past: string[] = [];
    for (;;) {
      const now = Date.now();
      const v = await verdict('B', now);
      if (now - last > STALE_AFTER) past.push(v.state);
      if (now - last > STALE_AFTER + 2 * INTERVAL) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(past.length).toBeGreaterThan(10);
    expect(new Set(past)).toEqual(new Set(['unknown']));

    const st = await status();
    const b = storeIn(st, 'B');
    expect(b.state).toBe('unknown');
    expect(b.master.reasons.join(' ')).toMatch(/last report is \d+ s old \(limit 3 s\)/);
    expect(st.agents.find((a) => a.machine === 'm2')).toMatchObject({ stale: true });
    // m1 still reports: A (master s11 on m1) keeps a verdict of its own, never unknown; it may
    // still be lagging for a moment while the last records of the earlier scenarios replicate.
    expect(storeIn(st, 'A').state).not.toBe('unknown');
    await waitFor(async () => (await verdict('A', Date.now())).state === 'caught-up', 20_000, 'A caught-up (its agent still reports)');
    expect(st.replication[0]?.store).toBe('B');
    const shown = JSON.parse(await cli(['store', 'show', 'B', '--json'])) as { replication: { slots: Array<{ slot: string; sync: string }> } };
    expect(shown.replication.slots.map((s) => [s.slot, s.sync])).toEqual([['s22', 'unknown'], ['s12', 'empty']]);
  }));
});
