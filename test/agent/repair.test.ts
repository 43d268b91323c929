import { describe, it, expect, afterEach } from 'vitest';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { planRepairs, Repairer } from '../../src/agent/repair.js';
import { roleOf } from '../../src/agent/slots.js';
import { makeSlot, deadPid, type TmpSlot } from './helpers.js';
import { agentConfig, opContext, readReport, MASTER_LAYOUT, REPLICA_LAYOUT } from './context.js';

let slot: TmpSlot | undefined;
afterEach(() => slot?.cleanup());

const MASTER = roleOf(MASTER_LAYOUT, 's1');

describe('planRepairs', () => {
  it('on a current master: replay every orphan, start a missing rolling client', async () => {
    slot = makeSlot();
    const config = agentConfig(slot);
    const { slot: local } = await opContext(config, MASTER_LAYOUT);
    writeFileSync(join(slot.syncDir, 'log-run'), 'APPEND user.alice\n');
    writeFileSync(join(slot.syncDir, 'log'), 'APPEND user.bob\n');
    const report = await readReport(local, { store: 'A', currentMaster: true });
    expect(planRepairs(report, MASTER, config.repairs, new Map(), Date.now())).toEqual([
      { kind: 'replay-orphan-file', file: 'log-run' }, { kind: 'start-rolling-client' },
    ]);

    // Never on a slot that is not the current master, whose role is unknown, or whose store is failing over.
    expect(planRepairs(report, roleOf(REPLICA_LAYOUT, 's1'), config.repairs, new Map(), Date.now())).toEqual([]);
    expect(planRepairs(report, roleOf(null, 's1'), config.repairs, new Map(), Date.now())).toEqual([]);
    expect(planRepairs(report, { ...MASTER, storeState: 'failing-over' }, config.repairs, new Map(), Date.now())).toEqual([]);
    // Each switch on its own; backoff holds a kind back.
    expect(planRepairs(report, MASTER, { ...config.repairs, orphanFiles: false }, new Map(), Date.now())).toEqual([{ kind: 'start-rolling-client' }]);
    expect(planRepairs(report, MASTER, config.repairs, new Map([['start-rolling-client', Date.now() + 60_000]]), Date.now()))
      .toEqual([{ kind: 'replay-orphan-file', file: 'log-run' }]);
  });
});

describe('Repairer', () => {
  it('replays an orphan log-<PID> through the configured command, then removes it', async () => {
    slot = makeSlot();
    const replica = join(slot.root, 'replica.log');
    const config = agentConfig(slot, {
      repairs: { startRollingClient: false },
      commands: { replayFile: ['/bin/sh', '-c', 'cat "$1" >> "$2"', 'sh', '{file}', replica] },
    });
    const ctx = await opContext(config, MASTER_LAYOUT);
    const orphan = `log-${await deadPid()}`;
    writeFileSync(join(slot.syncDir, orphan), 'APPEND user.alice\n');
    const repairer = new Repairer(ctx);
    const records = await repairer.repair(ctx.slot, await readReport(ctx.slot, { store: 'A', currentMaster: true }), MASTER);
    expect(records).toEqual([expect.objectContaining({ kind: 'replay-orphan-file', result: 'ok', files: [orphan] })]);
    expect(records[0]?.commands[0]).toContain(join(slot.syncDir, orphan));
    expect(existsSync(join(slot.syncDir, orphan))).toBe(false);
    expect(readFileSync(replica, 'utf8')).toBe('APPEND user.alice\n');
    expect(repairer.lastRecord('s1')).toEqual(records[0]);
  });

  it('a failed replay keeps the file; a failed start backs off instead of retrying every round', async () => {
    slot = makeSlot();
    const config = agentConfig(slot, { commands: { replayFile: ['/bin/false'], startRollingClient: ['/bin/false'] } });
    const ctx = await opContext(config, MASTER_LAYOUT);
    writeFileSync(join(slot.syncDir, 'log-run'), 'APPEND user.alice\n');
    const repairer = new Repairer(ctx);
    const report = await readReport(ctx.slot, { store: 'A', currentMaster: true });
    const first = await repairer.repair(ctx.slot, report, MASTER);
    expect(first.map((r) => `${r.kind}:${r.result}`)).toEqual(['replay-orphan-file:failed', 'start-rolling-client:failed']);
    expect(first[0]?.detail).toMatch(/^COMMAND_FAILED: \/bin\/false exited 1/);
    expect(existsSync(join(slot.syncDir, 'log-run'))).toBe(true);
    expect(await repairer.repair(ctx.slot, report, MASTER)).toEqual([]);
  });

  it('a slot held by an operation is left alone', async () => {
    slot = makeSlot();
    const ctx = await opContext(agentConfig(slot), MASTER_LAYOUT);
    writeFileSync(join(slot.syncDir, 'log-run'), 'APPEND user.alice\n');
    ctx.locks.acquire('s1', 'operation flush');
    const report = await readReport(ctx.slot, { store: 'A', currentMaster: true });
    expect(await new Repairer(ctx).repair(ctx.slot, report, MASTER)).toEqual([]);
  });
});
