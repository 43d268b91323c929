/**
 * `storeroute machine evacuate` / `machine restore`: the plan (which store goes where, what is
 * skipped and why), the schedule (one at a time per receiving machine unless --parallel), and the
 * commands end to end over an embedded directory with a real agent per machine.
 */
import { describe, it, expect, afterEach } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { planEvacuate, planRestore, readAgents, runPlan, type FailoverResult, type PlannedMove } from '../../src/failover/index.js';
import { cli } from '../cli/harness.js';
import { configFileFor, makeRig, type Rig } from './rig.js';
import { fakeSyncClient, stop } from '../agent/helpers.js';

let rig: Rig | undefined;
let rolling: Awaited<ReturnType<typeof fakeSyncClient>> | undefined;
afterEach(async () => {
  await stop(rolling);
  rolling = undefined;
  await rig?.close();
  rig = undefined;
});

/**
 * Three machines, interlaced: m1 masters A, B, C; A and B have their other slot on m2 and m3, C
 * has one on each (so the plan must choose), D is mastered on m2 with its replica on m1.
 */
const LAYOUT = {
  slots: { a1: 'm1', a2: 'm2', b1: 'm1', b3: 'm3', c1: 'm1', c2: 'm2', c3: 'm3', d2: 'm2', d1: 'm1' },
  stores: [
    { name: 'A', slots: ['a1', 'a2'], preferredMaster: 'a1' },
    { name: 'B', slots: ['b1', 'b3'], preferredMaster: 'b1' },
    { name: 'C', slots: ['c1', 'c2', 'c3'], preferredMaster: 'c1' },
    { name: 'D', slots: ['d2', 'd1'], preferredMaster: 'd2' },
  ],
};

const configFor = (r: Rig) => configFileFor(r, 'holdMs: 50, pollMs: 50');

const masters = async (r: Rig) => Object.fromEntries(Object.values((await r.directory.snapshot()).stores).map((s) => [s.name, s.currentMaster]));

describe('the plan', () => {
  it('evacuate: every store mastered on the machine, spread to the least-loaded machine, masters per machine after', async () => {
    rig = await makeRig({ layout: LAYOUT });
    const plan = planEvacuate(await rig.directory.snapshot(), 'm1');
    // m2 holds D and gets A, m3 gets B: C goes to m3, the lighter one.
    expect(plan.moves.map((m) => `${m.store}:${m.from}→${m.to}`)).toEqual(['A:a1→a2', 'B:b1→b3', 'C:c1→c3']);
    expect(plan.mastersBefore).toEqual({ m1: 3, m2: 1, m3: 0 });
    expect(plan.mastersAfter).toEqual({ m1: 0, m2: 2, m3: 2 });
    // With m3 down for B's sake, C goes to m2 instead.
    await rig.directory.setSlotState('c3', 'down', 'test');
    expect(planEvacuate(await rig.directory.snapshot(), 'm1').moves.find((m) => m.store === 'C')).toMatchObject({ to: 'c2', toMachine: 'm2' });
  });

  it('evacuate skips a store with no other slot up, naming it; an unknown machine is an error', async () => {
    rig = await makeRig({ layout: LAYOUT });
    await rig.directory.setSlotState('b3', 'down', 'test');
    const plan = planEvacuate(await rig.directory.snapshot(), 'm1');
    expect(plan.skipped).toEqual([{ store: 'B', why: 'no slot off m1 is up (b3 down)' }]);
    expect(plan.moves.map((m) => m.store)).toEqual(['A', 'C']);
    expect(() => planEvacuate(plan as never, 'm9')).toThrow();
    expect(() => planEvacuate({ version: 1, slots: {}, stores: {}, users: {} }, 'm9')).toThrow('no slot is on machine m9');
  });

  it('restore: only stores running backwards onto a machine, only where caught-up, the rest skipped with why', async () => {
    rig = await makeRig({ layout: LAYOUT });
    for (const [store, to] of [['A', 'a2'], ['B', 'b3'], ['C', 'c3']] as const) await rig.directory.failover(store, { to }, 'test');
    writeFileSync(join(rig.slots.get('b3')!.syncDir, 'log'), 'APPEND user.bob\n');
    await rig.directory.setSlotState('c1', 'down', 'test');
    await new Promise((r) => setTimeout(r, 500)); // a report of b3's pending log
    const plan = planRestore(await rig.directory.snapshot(), 'm1', await readAgents(rig.directory, rig.config.agent));
    expect(plan.moves.map((m) => `${m.store}:${m.from}→${m.to}`)).toEqual(['A:a2→a1']);

    // Under live mail: a little pending on the current master with its rolling client running is
    // replication keeping up (the failover's drain empties the rest): A still goes.
    writeFileSync(join(rig.slots.get('a2')!.syncDir, 'log'), 'APPEND user.user-a\n');
    rolling = await fakeSyncClient(['-C', rig.slots.get('a2')!.conf, '-r']);
    await new Promise((r) => setTimeout(r, 500));
    const busy = planRestore(await rig.directory.snapshot(), 'm1', await readAgents(rig.directory, rig.config.agent));
    expect(busy.moves.map((m) => m.store)).toEqual(['A']);
    expect(plan.skipped).toEqual([
      { store: 'B', why: expect.stringMatching(/^replication stalled on b3: .*no rolling sync_client/) },
      { store: 'C', why: 'preferred master c1 is down' },
    ]);
  });
});

describe('the schedule', () => {
  const plan = (targets: string[]) => ({
    kind: 'evacuate' as const, machine: 'm1', skipped: [], mastersBefore: {}, mastersAfter: {},
    moves: targets.map((t, i): PlannedMove => ({ store: `S${i + 1}`, from: `x${i}`, fromMachine: 'm1', to: `y${i}`, toMachine: t })),
  });
  async function maxConcurrency(p: ReturnType<typeof plan>, parallel?: number) {
    let now = 0;
    let max = 0;
    const perMachine = new Map<string, number>();
    let maxPerMachine = 0;
    const { results } = await runPlan(p, {
      ...(parallel !== undefined ? { parallel } : {}),
      failover: async (m): Promise<FailoverResult> => {
        now++;
        perMachine.set(m.toMachine, (perMachine.get(m.toMachine) ?? 0) + 1);
        max = Math.max(max, now);
        maxPerMachine = Math.max(maxPerMachine, perMachine.get(m.toMachine)!);
        await new Promise((r) => setTimeout(r, 20));
        now--;
        perMachine.set(m.toMachine, perMachine.get(m.toMachine)! - 1);
        return { outcome: m.store === 'S2' ? 'aborted' : 'done', store: m.store, from: m.from, to: m.to, epoch: 1, detail: '', ms: 20 };
      },
    });
    return { max, maxPerMachine, results };
  }

  it('by default one at a time per receiving machine; --parallel is a plain cap; one failure does not stop the rest', async () => {
    expect(await maxConcurrency(plan(['m2', 'm2', 'm3', 'm2', 'm3']))).toMatchObject({ max: 2, maxPerMachine: 1 });
    expect(await maxConcurrency(plan(['m2', 'm2', 'm2', 'm2']))).toMatchObject({ max: 1 });
    const capped = await maxConcurrency(plan(['m2', 'm2', 'm2', 'm2', 'm2']), 3);
    expect(capped.max).toBe(3);
    expect(capped.results.map((r) => `${r.store}:${r.outcome}`)).toEqual(['S1:done', 'S2:aborted', 'S3:done', 'S4:done', 'S5:done']);
  });
});

describe('storeroute machine', () => {
  it('evacuate --dry-run prints the plan and changes nothing; an unknown machine exits 2', async () => {
    rig = await makeRig({ layout: LAYOUT });
    const r = await cli(['--config', configFor(rig), 'machine', 'evacuate', 'm1', '--dry-run']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^evacuate m1: 3 store\(s\) to move, one at a time per receiving machine \(2 at once\)$/m);
    expect(r.stdout).toMatch(/^C +c1 \(m1\) +c3 \(m3\)$/m);
    expect(r.stdout).toContain('masters per machine: m1 3 → 0, m2 1 → 2, m3 0 → 2');
    expect(await masters(rig)).toEqual({ A: 'a1', B: 'b1', C: 'c1', D: 'd2' });
    const bad = await cli(['--config', configFor(rig), 'machine', 'evacuate', 'm9', '--yes']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('no slot is on machine m9');
  });

  it('evacuate then restore: every store away from m1, then back on its preferred master; status shows none backwards', async () => {
    rig = await makeRig({ layout: LAYOUT });
    const config = configFor(rig);
    const out = await cli(['--config', config, '--actor', 'ops:evac', 'machine', 'evacuate', 'm1', '--yes', '--json']);
    expect(out.stderr).toBe('');
    expect(out.code).toBe(0);
    const events = out.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(events[0]).toMatchObject({ event: 'plan', parallel: 2, perMachine: 1 });
    expect(events.filter((e) => e.event === 'store').map((e) => `${String(e.store)}:${String(e.outcome)}`).sort()).toEqual(['A:done', 'B:done', 'C:done']);
    expect(events.at(-1)).toMatchObject({ event: 'result', outcome: 'done', skipped: [], notStarted: [] });
    expect(await masters(rig)).toEqual({ A: 'a2', B: 'b3', C: 'c3', D: 'd2' });
    expect((await rig.directory.history(200)).filter((h) => h.actor === 'ops:evac' && h.action === 'failover-switch')).toHaveLength(3);

    await new Promise((r) => setTimeout(r, 500)); // the agents report the new masters caught-up
    const back = await cli(['--config', config, 'machine', 'restore', 'm1', '--yes']);
    expect(back.code, back.stdout + back.stderr).toBe(0);
    expect(back.stdout).toMatch(/^restore m1: 3 of 3 store\(s\) done in \d+\.\d s$/m);
    expect(await masters(rig)).toEqual({ A: 'a1', B: 'b1', C: 'c1', D: 'd2' });
    const status = await cli(['--config', config, 'status', '--json']);
    expect(JSON.parse(status.stdout)).toMatchObject({ runningBackwards: [], storesNotActive: [], failoversNeedingAttention: [] });
    const again = await cli(['--config', config, 'machine', 'restore', 'm1', '--yes']);
    expect(again).toMatchObject({ code: 0 });
    expect(again.stdout).toContain('nothing to do: no store to restore on m1');
  });

  it('a store that cannot move is listed with why, the others move, and the exit is 1', async () => {
    rig = await makeRig({ layout: LAYOUT });
    await rig.directory.setStoreState('B', 'failing-over', 'test');
    const r = await cli(['--config', configFor(rig), 'machine', 'evacuate', 'm1', '--yes']);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^B +b1 +b3 +refused +\d+\.\d s +store B is failing-over, not active/m);
    expect(r.stdout).toMatch(/^evacuate m1: 2 of 3 store\(s\) done in .*the others need a look/m);
    expect(await masters(rig)).toEqual({ A: 'a2', B: 'b1', C: 'c3', D: 'd2' });
  });
});
