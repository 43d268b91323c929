/**
 * Issue #14 on the real stack (postfix, nginx, Redis, four Cyrus slots on two machines, an agent
 * per machine), in order, each drill starting where the last one left the stores:
 *
 *   1. `failover A` while postfix delivers to A's users the whole time, and an IMAP login through
 *      nginx made during the hold: every accepted message on the new master exactly once, none
 *      bounced, the verify replay found nothing, the login was held and landed on the new master;
 *   2. the drain really waits: B's replica down and mail pending → the drain misses its deadline,
 *      B is active on its old master again, nothing lost; replica back, the rolling sync_client
 *      gone → the agent's flush empties the log before the switch; two runs at once: one refused;
 *   3. `machine evacuate m1` then `machine restore m1` under load: every store on its preferred
 *      master, every message exactly once, `status` shows nothing running backwards;
 *   4. `failover --crash`: the master dies with unreplicated mail, replay puts it on the new one.
 *
 * The runner is the CLI from source (tsx), as an operator would run it; the stack itself runs the
 * built one. Replication after a switch: the new master's agent starts its rolling sync_client
 * (the store is active again); the harness's own clients are stopped by the test.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { join, resolve } from 'node:path';
import { parse, stringify } from 'yaml';
import { startStack, stopStack, startPump, USERS, type Stack, type Sent } from './stack/index.js';
import { imapLoginReply } from './stack/mail.js';
import { waitFor } from '../helpers/ports.js';
import { AgentProcess, killSyncClientsUnder } from './stack/agent.js';

/** Not 127.42 (scenarios), .43 (harness), .44 (replay), .45 (replication), .46 (agent), .48/.49 (check). */
const NET = process.env.STOREROUTE_E2E_FAILOVER_NET ?? '127.47';
const TOKEN = 'failover-e2e-token-0123456789';
const INTERVAL = 500;
const REPO = resolve(import.meta.dirname, '../..');

let stack: Stack;
let agents: AgentProcess[] = [];
let configFile: string;
let failed = false;

beforeAll(async () => {
  stack = await startStack({ net: NET, tag: 'failover' });
  const { s11, s12, s21, s22 } = stack.slots;
  const common = { dir: join(stack.dir, 'agents'), directory: stack.storeroute.directoryConfig, intervalMs: INTERVAL, token: TOKEN };
  agents = [new AgentProcess({ ...common, machine: 'm1', slots: [s11, s12] }), new AgentProcess({ ...common, machine: 'm2', slots: [s21, s22] })];
  await Promise.all(agents.map((a) => a.start()));
  // The operator's config: the proxies' (directory, admin.token for the replay fan-out) plus the agents' token.
  const config = parse(readFileSync(stack.storeroute.configFile, 'utf8')) as Record<string, unknown>;
  configFile = join(stack.dir, 'operator.yaml');
  writeFileSync(configFile, stringify({ ...config, log: { level: 'warn' }, agent: { intervalMs: INTERVAL, token: TOKEN },
    failover: { holdMs: 1_000, drainTimeoutMs: 30_000, pollMs: 100 } }));
});

afterAll(async () => {
  if (failed) for (const a of agents) console.log(`--- agent ${a.machine} ---\n${a.logTail(60)}`);
  for (const a of agents) await a.stop().catch(() => undefined);
  if (stack) await killSyncClientsUnder(stack.dir).catch(() => undefined);
  await stopStack(stack, failed);
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `storeroute <args>` from source with the operator's config; `onLine` sees each stdout line as it comes. */
function storeroute(args: string[], opts: { config?: string; onLine?: (line: string) => void } = {}): Promise<Run> {
  return new Promise((done, reject) => {
    const child = spawn(join(REPO, 'node_modules/.bin/tsx'), [join(REPO, 'src/cli/index.ts'), '--config', opts.config ?? configFile, '--actor', 'e2e:failover', ...args],
      { cwd: stack.dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    createInterface({ input: child.stdout }).on('line', (l) => {
      stdout += `${l}\n`;
      opts.onLine?.(l);
    });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.once('error', reject);
    child.once('close', (code) => { clearTimeout(timer); done({ code, stdout, stderr }); });
  });
}

const failover = (args: string[], opts?: Parameters<typeof storeroute>[1]) => storeroute(['failover', ...args], opts);
const jsonLines = (r: Run) => r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);

/** Every id of `sent` for each user is on `slot` exactly once (waiting for stragglers). */
async function expectExactlyOnce(slot: Stack['slots']['s11'], sent: Sent[]): Promise<void> {
  for (const user of [...new Set(sent.map((s) => s.user))]) {
    const ids = sent.filter((s) => s.user === user).map((s) => s.messageId);
    const counts = await stack.waitFor(slot, user, ids, 60_000);
    const wrong = ids.filter((id) => counts.get(id) !== 1).map((id) => `${id}×${counts.get(id) ?? 0}`);
    expect(wrong, `${user}: not on ${slot.name} exactly once`).toEqual([]);
  }
}

/** The test body; on failure the agents' and the stack's logs are printed at teardown. */
const drill = (fn: () => Promise<void>) => async () => {
  try {
    await fn();
  } catch (err) {
    failed = true;
    throw err;
  }
};

/** Every message sent so far, by user: at the end all of alice's and bob's are on A's last master once. */
const everything: Sent[] = [];

describe.sequential('storeroute failover on the real stack', () => {
  it('1. controlled failover of A under continuous load: every accepted message on the new master exactly once, none bounced; a login during the hold lands there', drill(async () => {
    const mark = stack.postfix.log().length;
    const { s11, s21 } = stack.slots;
    const pump = startPump(stack, ['alice', 'bob'], { tag: 'fo', paceMs: 20 });
    await pump.more(100, 60_000);
    // An IMAP login through nginx once A is held: auth_http answers WAIT until the release.
    let login: Promise<string> | null = null;
    let releasedAt = 0;
    let loginDoneAt = 0;
    const run = await failover(['A', '--to', 's21', '--yes', '--json'], {
      onLine: (l) => {
        const e = JSON.parse(l) as { phase?: string; status?: string };
        if (e.phase === 'hold' && e.status === 'ok') {
          login = imapLoginReply('127.0.0.1', stack.nginx.imapPort, 'alice', USERS.alice!.password).finally(() => { loginDoneAt = Date.now(); });
        }
        if (e.phase === 'release' && e.status === 'ok') releasedAt = Date.now();
      },
    });
    await pump.more(100, 60_000);
    const sent: Sent[] = await pump.stop();
    everything.push(...sent);
    const lines = jsonLines(run);
    const result = lines.at(-1) as { outcome: string; ms: number; replay?: { delivered: number; failed: number } };
    expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(0);
    expect(result).toMatchObject({ event: 'result', outcome: 'done', from: 's11', to: 's21' });
    expect(result.replay).toMatchObject({ delivered: 0, failed: 0 });
    // The proxy said when nothing was in flight to s11 any more: no fixed sleep.
    expect(lines.find((l) => l.phase === 'hold' && l.status === 'ok')!.detail).toMatch(/nothing in flight to s11 after \d+ ms$/);
    await s11.stopReplication();
    stack.stores.A = { master: s21, replica: s11 };

    expect(login, 'the login was started during the hold').not.toBeNull();
    expect(await login!).toMatch(/^a1 OK .*SESSIONID=<cyrus-s21-/);
    expect(loginDoneAt).toBeGreaterThanOrEqual(releasedAt);
    await waitFor(() => readFileSync(stack.storeroute.logFile, 'utf8').split('\n').some((l) => l.includes('"auth_wait"') && l.includes('alice')),
      5_000, 'auth_http to have held alice\'s login (auth_wait)');

    expect(sent.length).toBeGreaterThanOrEqual(200);
    await stack.waitQueueEmpty(90_000);
    await expectExactlyOnce(s21, sent);
    const log = stack.postfix.log().slice(mark).split('\n');
    expect(log.filter((l) => l.includes('status=bounced'))).toEqual([]);
    // For the record (README figures): each phase's time, how much was held back and retried.
    const deferred = log.filter((l) => l.includes('status=deferred') && l.includes('4.3.0')).length;
    console.log(`failover e2e: ${sent.length} messages, ${deferred} deferred with 4.3.0 during the hold; phases: `
      + lines.filter((l) => l.event === 'phase' && l.status !== 'start').map((l) => `${String(l.phase)} ${String(l.status)} ${String(l.ms)} ms`).join(', ')
      + `; total ${result.ms} ms; login held ${loginDoneAt - releasedAt >= 0 ? 'until after the release' : '?'}`);
  }));

  it('2. the drain waits: a replica that cannot take the backlog aborts at the deadline (B active on s22 again, nothing lost); with the rolling client gone the flush empties the log before the switch; a second run at once is refused', drill(async () => {
    const mark = stack.postfix.log().length;
    const { s12, s22 } = stack.slots;
    const m2 = agents.find((a) => a.machine === 'm2')!;
    // B's replication: only what the agent on m2 does from now on, and it starts no rolling client.
    await m2.stop();
    await s22.stopReplication();
    await killSyncClientsUnder(s22.dir);
    const quiet = new AgentProcess({ dir: join(stack.dir, 'agents'), directory: stack.storeroute.directoryConfig, intervalMs: INTERVAL, token: TOKEN,
      machine: 'm2', slots: [stack.slots.s21, s22], repairs: { startRollingClient: false } });
    await quiet.start();
    agents = agents.map((a) => (a === m2 ? quiet : a));

    await s12.stop();
    const pending: Sent[] = [];
    for (let i = 0; i < 5; i++) pending.push({ user: 'carol', messageId: (await stack.send(['carol'], `fo drain ${i}`)).messageId });
    await stack.waitQueueEmpty();
    await stack.waitFor(s22, 'carol', pending.map((p) => p.messageId));
    everything.push(...pending);

    const short = join(stack.dir, 'operator-short-drain.yaml');
    const base = parse(readFileSync(configFile, 'utf8')) as Record<string, Record<string, unknown>>;
    writeFileSync(short, stringify({ ...base, failover: { ...base.failover, preFlushMs: 1_000, drainTimeoutMs: 3_000 } }));
    const aborted = await failover(['B', '--to', 's12', '--yes', '--json'], { config: short });
    const r1 = jsonLines(aborted).at(-1) as { outcome: string; detail: string; pending?: { pendingBytes: number } };
    expect(aborted.code, aborted.stdout + aborted.stderr).toBe(1);
    expect(r1).toMatchObject({ outcome: 'aborted', from: 's22', to: 's12' });
    // With the replica down the agent's replay of s22's log cannot finish: either the flush before
    // the hold says so (nothing held, nothing to roll back) or the drain misses its deadline and rolls back.
    expect(r1.detail).toMatch(/^(flush of s22 failed: .*|drain deadline \(3000 ms\) passed with )s22 \w+: \d+ bytes pending for carol/);
    expect(r1.detail).toMatch(/nothing to roll back|rolled back .*store B active on its old master s22/);
    expect(r1.pending!.pendingBytes).toBeGreaterThan(0);
    const b = JSON.parse(await stack.storeroute.ok(['store', 'show', 'B', '--json'])) as { store?: Record<string, unknown> } & Record<string, unknown>;
    expect(b.store ?? b).toMatchObject({ currentMaster: 's22', state: 'active', epoch: 0 });

    // The replica is back; no rolling client runs on s22: only the agent's flush can carry the backlog.
    await s12.start();
    const runs = await Promise.all([failover(['B', '--to', 's12', '--yes', '--json']),
      new Promise<void>((r) => setTimeout(r, 100)).then(() => failover(['B', '--to', 's12', '--yes', '--json']))]);
    const results = runs.map((r) => jsonLines(r).at(-1) as { outcome: string; detail: string });
    const winner = results.findIndex((r) => r.outcome === 'done');
    expect(results.map((r) => r.outcome).sort(), runs.map((r) => r.stdout + r.stderr).join('\n')).toEqual(['done', 'refused']);
    expect(results[1 - winner]!.detail).toMatch(/another failover of B is running|store B is failing-over, not active|already the current master/);
    const phases = jsonLines(runs[winner]!).filter((l) => l.event === 'phase' && l.status === 'ok');
    const names = phases.map((l) => l.phase);
    expect(names.indexOf('flush')).toBeLessThan(names.indexOf('switch'));
    expect(phases.find((l) => l.phase === 'flush')!.detail).toMatch(/^s22: [1-9]\d* → 0 bytes/);
    stack.stores.B = { master: s12, replica: s22 };
    await expectExactlyOnce(s12, pending);
    expect(stack.postfix.log().slice(mark)).not.toContain('status=bounced');

    // m2's agent as before (it starts rolling clients again) for the drills that follow.
    await quiet.stop();
    await m2.start();
    agents = agents.map((a) => (a === quiet ? m2 : a));
  }));

  it('3. machine evacuate m1, then machine restore m1, under load: every store on its preferred master, every message exactly once, none running backwards', drill(async () => {
    const mark = stack.postfix.log().length;
    const { s11, s22 } = stack.slots;
    // A runs backwards on s21 (drill 1), B on s12 (drill 2): m1 holds B's master only.
    const pump = startPump(stack, ['alice', 'bob', 'carol', 'dave'], { tag: 'evac', paceMs: 40 });
    await pump.more(20, 60_000);
    const evac = await storeroute(['machine', 'evacuate', 'm1', '--dry-run']);
    expect(evac.code).toBe(0);
    expect(evac.stdout).toMatch(/^B +s12 \(m1\) +s22 \(m2\)$/m);
    expect(evac.stdout).toContain('masters per machine: m1 1 → 0, m2 1 → 2');
    const out = await storeroute(['machine', 'evacuate', 'm1', '--yes', '--json']);
    expect(out.code, out.stdout + out.stderr).toBe(0);
    expect(jsonLines(out).at(-1)).toMatchObject({ event: 'result', outcome: 'done', results: [{ store: 'B', outcome: 'done', to: 's22' }] });
    stack.stores.B = { master: s22, replica: stack.slots.s12 };
    await pump.more(20, 60_000);

    await new Promise((r) => setTimeout(r, 3 * INTERVAL)); // the agents report A's s21 caught-up
    const back = await storeroute(['machine', 'restore', 'm1', '--yes', '--json']);
    expect(back.code, back.stdout + back.stderr).toBe(0);
    expect(jsonLines(back).at(-1)).toMatchObject({ event: 'result', outcome: 'done', skipped: [], results: [{ store: 'A', outcome: 'done', from: 's21', to: 's11' }] });
    stack.stores.A = { master: s11, replica: stack.slots.s21 };
    await pump.more(20, 60_000);
    const sent = await pump.stop();
    everything.push(...sent);

    const status = JSON.parse(await stack.storeroute.ok(['status', '--json'])) as Record<string, unknown>;
    expect(status).toMatchObject({ runningBackwards: [], storesNotActive: [], mastersPerMachine: { m1: 1, m2: 1 } });
    await stack.waitQueueEmpty(90_000);
    await expectExactlyOnce(s11, everything.filter((m) => m.user === 'alice' || m.user === 'bob'));
    await expectExactlyOnce(s22, everything.filter((m) => m.user === 'carol' || m.user === 'dave'));
    expect(stack.postfix.log().slice(mark)).not.toContain('status=bounced');
    console.log(`failover e2e evacuate/restore m1: ${sent.length} messages during; evacuate ${String(jsonLines(out).at(-1)!.ms)} ms, restore ${String(jsonLines(back).at(-1)!.ms)} ms`);
  }));

  it('4. --crash: the master dies with unreplicated mail; failover --crash puts it on the new master once, and says what was lost', drill(async () => {
    const { s11, s21 } = stack.slots;
    // Replication s11 → s21 stops for good: the agent that would restart it goes first.
    const m1 = agents.find((a) => a.machine === 'm1')!;
    await m1.stop();
    await killSyncClientsUnder(s11.dir);
    await s11.stopReplication();
    const lost: Sent[] = [];
    for (let i = 0; i < 10; i++) lost.push({ user: 'alice', messageId: (await stack.send(['alice'], `fo crash ${i}`)).messageId });
    await stack.waitQueueEmpty();
    await stack.waitFor(s11, 'alice', lost.map((l) => l.messageId));
    const onS21 = await stack.counts(s21, 'alice');
    expect(lost.filter((l) => onS21.has(l.messageId))).toEqual([]);
    everything.push(...lost);
    await s11.crash();

    const run = await failover(['A', '--crash', '--to', 's21', '--yes', '--json']);
    const result = jsonLines(run).at(-1) as { outcome: string; replay?: { delivered: number; failed: number }; lostLag?: unknown };
    expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(0);
    expect(result).toMatchObject({ outcome: 'done', from: 's11', to: 's21', lostLag: { slot: 's11' }, replay: { failed: 0 } });
    expect(result.replay!.delivered).toBeGreaterThanOrEqual(10);
    stack.stores.A = { master: s21, replica: null };

    await expectExactlyOnce(s21, everything.filter((m) => m.user === 'alice' || m.user === 'bob'));
    const again = await stack.storeroute.cli(['replay', '--store', 'A', '--json']);
    expect(again.code, `${again.stdout}${again.stderr}`).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ delivered: 0, failed: 0 });
    console.log(`failover e2e --crash: lost with s11 ${JSON.stringify(result.lostLag)}; replay ${JSON.stringify(result.replay)}`);
  }));
});
