import { describe, it, expect, afterEach } from 'vitest';
import { cli } from '../cli/harness.js';
import { configFileFor, makeRig, pend, type Rig } from './rig.js';

let rig: Rig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});
const configFor = configFileFor;

describe('storeroute failover', () => {
  it('runs the phases with timings, verifies through `replay`, exits 0', async () => {
    rig = await makeRig();
    pend(rig, 's1');
    const r = await cli(['--config', configFor(rig), '--actor', 'ops:night', 'failover', 'A', '--yes']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    for (const p of ['preflight', 'lease', 'flush', 'hold', 'drain', 'switch', 'release', 'verify']) expect(r.stdout).toMatch(new RegExp(`^${p} +ok +\\d+ ms`, 'm'));
    expect(r.stdout).toMatch(/^verify +ok .*selected 0, already present 0, delivered 0/m);
    expect(r.stdout).toMatch(/^done: A active on s2, epoch 1 \(\d+\.\d s\)$/m);
    expect((await rig.directory.getStore('A'))!.currentMaster).toBe('s2');
    expect((await rig.directory.history(40)).some((h) => h.actor === 'ops:night' && h.action === 'failover-switch')).toBe(true);
  });

  it('--json: one event per line, then the result; refusals exit 1', async () => {
    rig = await makeRig();
    const r = await cli(['--config', configFor(rig), 'failover', 'A', '--to', 's1', '--json', '--yes']);
    expect(r.code).toBe(1);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines[0]).toMatchObject({ event: 'phase', phase: 'lease', status: 'start' });
    expect(lines.at(-1)).toMatchObject({ event: 'result', outcome: 'refused', detail: 'slot s1 is already the current master of A' });
  });

  it('asks before acting, and refuses to guess without a terminal', async () => {
    rig = await makeRig();
    const r = await cli(['--config', configFor(rig), 'failover', 'A']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('pass --yes');
    expect((await rig.directory.getStore('A'))!.currentMaster).toBe('s1');
  });

  it('a failover that switched but needs attention is listed first in `status` until a clean one clears it', async () => {
    rig = await makeRig();
    const config = configFor(rig, 'holdMs: 50, hooks: { afterSwitch: [[/bin/sh, -c, "echo no route to {toIp} >&2; exit 3"]] }');
    const r = await cli(['--config', config, '--actor', 'ops:night', 'failover', 'A', '--yes']);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^post-switch FAILED/m);
    const status = await cli(['--config', config, 'status']);
    expect(status.stdout).toMatch(/^Failovers needing attention \(1\):\n +STORE +FROM +TO +WHEN +BY +WHAT\n +A +s1 +s2 +\d+s ago +ops:night +post-switch hook failed: .*no route to 127\.0\.0\.12/m);
    expect(JSON.parse((await cli(['--config', config, 'status', '--json'])).stdout)).toMatchObject({
      failoversNeedingAttention: [{ store: 'A', from: 's1', to: 's2', actor: 'ops:night', attention: expect.stringContaining('exit') }],
    });
    await new Promise((res) => setTimeout(res, 500)); // s2's agent reports the store caught-up as its master
    const back = await cli(['--config', configFor(rig), 'failover', 'A', '--yes']);
    expect(back.code, back.stdout).toBe(0);
    expect((await cli(['--config', config, 'status'])).stdout).not.toContain('Failovers needing attention');
  });
});
