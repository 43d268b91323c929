import { describe, it, expect, afterEach } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cli } from '../cli/harness.js';
import { makeRig, pend, TOKEN, type Rig } from './rig.js';

let rig: Rig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

/** A config file for the CLI over the rig's embedded directory (the agents publish into it). */
function configFor(r: Rig, failover = 'holdMs: 50'): string {
  const file = join(r.root, 'storeroute.yaml');
  writeFileSync(file, [
    'log: { level: silent }',
    'directory: { backend: embedded, embedded: { file: directory.json } }',
    'journal: { dir: journal }',
    `agent: { intervalMs: 200, token: ${TOKEN} }`,
    `failover: { ${failover} }`, '',
  ].join('\n'));
  return file;
}

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
    expect(lines[0]).toMatchObject({ event: 'phase', phase: 'preflight', status: 'start' });
    expect(lines.at(-1)).toMatchObject({ event: 'result', outcome: 'refused', detail: 'slot s1 is already the current master of A' });
  });

  it('asks before acting, and refuses to guess without a terminal', async () => {
    rig = await makeRig();
    const r = await cli(['--config', configFor(rig), 'failover', 'A']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('pass --yes');
    expect((await rig.directory.getStore('A'))!.currentMaster).toBe('s1');
  });
});
