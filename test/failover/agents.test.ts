/**
 * The runner reads the agents' reports through agent/view.ts, as `status` does: a report whose
 * slot entry is malformed is no evidence (the store is unknown, never caught-up), and the machine
 * says why (the runner used to have its own reader that checked only a report's top level).
 */
import { describe, it, expect, afterEach } from 'vitest';
import { readAgents, verdictOf } from '../../src/failover/agents.js';
import { makeRig, type Rig } from './rig.js';

let rig: Rig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

describe('readAgents', () => {
  it('trusts a well-formed report, and not one whose slot entry is malformed', async () => {
    rig = await makeRig();
    await new Promise((r) => setTimeout(r, 300));
    const real = rig.agents.get('m1')!.report()!;
    await rig.agents.get('m1')!.close();
    rig.agents.delete('m1');
    const store = (await rig.directory.getStore('A'))!;
    const at = Date.now();
    const fresh = { ...real, measuredAt: at, slots: real.slots.map((s) => ({ ...s, measuredAt: at })) };

    await rig.directory.publishStatus('agent', 'm1', fresh);
    const good = await readAgents(rig.directory, rig.config.agent);
    expect(verdictOf(good, store).state).toBe('caught-up');
    expect(good.machines.get('m1')).toMatchObject({ url: real.url, stale: false, slots: ['s1'] });

    await rig.directory.publishStatus('agent', 'm1', { ...fresh, slots: fresh.slots.map((s) => ({ ...s, pendingBytes: '0' })) });
    const forged = await readAgents(rig.directory, rig.config.agent);
    expect(verdictOf(forged, store).state).toBe('unknown');
    expect(forged.machines.get('m1')).toMatchObject({ problem: '1 malformed slot report(s) left out', slots: [] });
  });
});
