/**
 * Issue #14, first slice: `storeroute failover A` on the real stack (postfix, nginx, Redis, four
 * Cyrus slots on two machines, an agent per machine) while postfix delivers to the store's users
 * the whole time. Afterwards every message postfix accepted is on the new master exactly once,
 * none bounced, and the verify replay found nothing to deliver.
 *
 * The runner is the CLI from source (tsx), as an operator would run it; the stack itself runs the
 * built one. Replication after the switch: the new master's agent starts its rolling sync_client
 * (the store is active again); the harness's old s11 → s21 client is stopped by the test.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parse, stringify } from 'yaml';
import { startStack, stopStack, startPump, type Stack, type Sent } from './stack/index.js';
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

function failover(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done, reject) => {
    const child = spawn(join(REPO, 'node_modules/.bin/tsx'), [join(REPO, 'src/cli/index.ts'), '--config', configFile, '--actor', 'e2e:failover', 'failover', ...args],
      { cwd: stack.dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
    child.once('error', reject);
    child.once('close', (code) => { clearTimeout(timer); done({ code, stdout, stderr }); });
  });
}

let controlled: Sent[] = [];

describe.sequential('storeroute failover on the real stack', () => {
  it('controlled failover of A under continuous load: every accepted message on the new master exactly once, none bounced', async () => {
    try {
      const mark = stack.postfix.log().length;
      const { s11, s21 } = stack.slots;
      const pump = startPump(stack, ['alice', 'bob'], { tag: 'fo', paceMs: 20 });
      await pump.more(100, 60_000);
      const run = await failover(['A', '--to', 's21', '--yes', '--json']);
      await pump.more(100, 60_000);
      const sent: Sent[] = await pump.stop();
      controlled = sent;
      const lines = run.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
      const result = lines.at(-1) as { outcome: string; replay?: { delivered: number; failed: number } };
      expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(0);
      expect(result).toMatchObject({ event: 'result', outcome: 'done', from: 's11', to: 's21' });
      expect(result.replay).toMatchObject({ delivered: 0, failed: 0 });
      await s11.stopReplication();
      stack.stores.A = { master: s21, replica: s11 };

      expect(sent.length).toBeGreaterThanOrEqual(200);
      await stack.waitQueueEmpty(90_000);
      for (const user of ['alice', 'bob']) {
        const ids = sent.filter((s) => s.user === user).map((s) => s.messageId);
        const counts = await stack.waitFor(s21, user, ids, 60_000);
        const wrong = ids.filter((id) => counts.get(id) !== 1).map((id) => `${id}×${counts.get(id) ?? 0}`);
        expect(wrong, `${user}: not on s21 exactly once`).toEqual([]);
      }
      const log = stack.postfix.log().slice(mark).split('\n');
      expect(log.filter((l) => l.includes('status=bounced'))).toEqual([]);
      // For the record (README figures): each phase's time, how much was held back and retried.
      const deferred = log.filter((l) => l.includes('status=deferred') && l.includes('4.3.0')).length;
      console.log(`failover e2e: ${sent.length} messages, ${deferred} deferred with 4.3.0 during the hold; phases: `
        + lines.filter((l) => l.event === 'phase' && l.status !== 'start').map((l) => `${String(l.phase)} ${String(l.status)} ${String(l.ms)} ms`).join(', ')
        + `; total ${String((result as { ms?: number }).ms)} ms`);
    } catch (err) {
      failed = true;
      throw err;
    }
  });

  it('--crash: the master dies with unreplicated mail; failover --crash puts it on the new master once, and says what was lost', async () => {
    try {
      const { s11, s21 } = stack.slots;
      // Replication s21 → s11 stops for good: the agent that would restart it goes first.
      const m2 = agents.find((a) => a.machine === 'm2')!;
      await m2.stop();
      await killSyncClientsUnder(stack.dir);
      const lost: Sent[] = [];
      for (let i = 0; i < 10; i++) lost.push({ user: 'alice', messageId: (await stack.send(['alice'], `fo crash ${i}`)).messageId });
      await stack.waitQueueEmpty();
      await stack.waitFor(s21, 'alice', lost.map((l) => l.messageId));
      const onS11 = await stack.counts(s11, 'alice');
      expect(lost.filter((l) => onS11.has(l.messageId))).toEqual([]);
      await s21.crash();

      const run = await failover(['A', '--crash', '--to', 's11', '--yes', '--json']);
      const result = JSON.parse(run.stdout.trim().split('\n').at(-1)!) as { outcome: string; replay?: { delivered: number; failed: number }; lostLag?: unknown };
      expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(0);
      expect(result).toMatchObject({ outcome: 'done', from: 's21', to: 's11', lostLag: { slot: 's21' }, replay: { failed: 0 } });
      expect(result.replay!.delivered).toBeGreaterThanOrEqual(10);
      stack.stores.A = { master: s11, replica: null };

      for (const user of ['alice', 'bob']) {
        const ids = [...controlled, ...lost].filter((s) => s.user === user).map((s) => s.messageId);
        const counts = await stack.waitFor(s11, user, ids, 60_000);
        const wrong = ids.filter((id) => counts.get(id) !== 1).map((id) => `${id}×${counts.get(id) ?? 0}`);
        expect(wrong, `${user}: not on s11 exactly once`).toEqual([]);
      }
      const again = await stack.storeroute.cli(['replay', '--store', 'A', '--json']);
      expect(again.code, `${again.stdout}${again.stderr}`).toBe(0);
      expect(JSON.parse(again.stdout)).toMatchObject({ delivered: 0, failed: 0 });
      console.log(`failover e2e --crash: lost with s21 ${JSON.stringify(result.lostLag)}; replay ${JSON.stringify(result.replay)}`);
    } catch (err) {
      failed = true;
      throw err;
    }
  });
});
