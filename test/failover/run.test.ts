import { describe, it, expect, afterEach } from 'vitest';
import { existsSync, readFileSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { fileLeases } from '../../src/failover/index.js';
import { makeRig, pend, phases, type Rig } from './rig.js';
import { fakeSyncClient, stop } from '../agent/helpers.js';

let rig: Rig | undefined;
let rolling: Awaited<ReturnType<typeof fakeSyncClient>> | undefined;
let switchedAt = 0;
afterEach(async () => {
  await stop(rolling);
  rolling = undefined;
  await rig?.close();
  rig = undefined;
});

async function storeA(r: Rig) {
  return (await r.directory.getStore('A'))!;
}

describe('failoverStore refuses, changing nothing', () => {
  it('an unknown store, a target that is down or already master, a target machine with no agent', async () => {
    rig = await makeRig({ machines: ['m1'] });
    const before = await storeA(rig);
    expect((await rig.run({ store: 'nope' })).result).toMatchObject({ outcome: 'refused', detail: 'no store nope' });
    expect((await rig.run({ to: 's1' })).result).toMatchObject({ outcome: 'refused', detail: 'slot s1 is already the current master of A' });
    expect((await rig.run({ to: 's9' })).result.outcome).toBe('refused');
    expect((await rig.run()).result).toMatchObject({ outcome: 'refused', detail: expect.stringContaining('no agent reports for machine m2') });
    await rig.directory.setSlotState('s2', 'down', 'test');
    const down = await rig.run({ to: 's2' });
    expect(down.result).toMatchObject({ outcome: 'refused', detail: 'target slot s2 is down (--force to fail over anyway)' });
    expect(phases(down.events)).toEqual(['lease:ok', 'preflight:failed']);
    expect(await storeA(rig)).toEqual(before);
  });

  it('a target agent that stopped reporting is stale', async () => {
    rig = await makeRig();
    await rig.agents.get('m2')!.close();
    rig.agents.delete('m2');
    await new Promise((r) => setTimeout(r, 800)); // 3 intervals of 200 ms: its last report turns stale
    const { result } = await rig.run();
    expect(result).toMatchObject({ outcome: 'refused', detail: expect.stringMatching(/the agent on m2 last reported \d+ s ago/) });
    expect((await storeA(rig)).state).toBe('active');
  });
});

describe('an unreachable agent', () => {
  it('the old master\'s agent not answering stops the failover as unreachable, nothing changed', async () => {
    rig = await makeRig();
    await rig.agents.get('m1')!.close(); // its last report is still fresh: the url is published, nobody listens
    rig.agents.delete('m1');
    const { result } = await rig.run();
    expect(result.outcome).toBe('unreachable');
    expect(result.detail).toMatch(/agent at http:\/\/127\.0\.0\.1:\d+ is not reachable/);
    expect(await storeA(rig)).toMatchObject({ currentMaster: 's1', state: 'active', epoch: 0 });
  });
});

describe('controlled failover', () => {
  it('drains the old master before switching, records every phase, releases', async () => {
    rig = await makeRig();
    pend(rig, 's1');
    const { result, events } = await rig.run();
    expect(result, result.detail).toMatchObject({ outcome: 'done', from: 's1', to: 's2', epoch: 1 });
    expect(phases(events)).toEqual(['lease:ok', 'preflight:ok', 'flush:ok', 'hold:ok', 'drain:ok', 'pre-switch:skipped', 'switch:ok',
      'post-switch:skipped', 'release:ok', 'verify:ok']);
    expect(events.find((e) => e.phase === 'flush' && e.status === 'ok')!.detail).toMatch(/^s1: 37 → 0 bytes/);
    expect(events.find((e) => e.phase === 'drain' && e.status === 'ok')!.detail).toMatch(/^s1 caught-up/);
    // The records reached the "replica" before the switch.
    expect(readFileSync(rig.replicaLog, 'utf8')).toContain('APPEND user.alice');
    expect(await storeA(rig)).toMatchObject({ currentMaster: 's2', state: 'active', epoch: 1 });
    const history = await rig.directory.history(50);
    const recorded = history.filter((h) => h.actor === 'test:failover' && h.action.startsWith('failover-')).map((h) => h.action);
    expect(recorded).toEqual(expect.arrayContaining(['failover-preflight', 'failover-hold', 'failover-drain', 'failover-switch', 'failover-verify']));
    expect(existsSync(join(rig.root, '.failover-A.lease'))).toBe(false);
  });

  it('the hold ends as soon as the proxies say nothing is in flight, and waits its whole bound when they cannot say', async () => {
    rig = await makeRig({ failover: { holdMs: 1_500 } });
    const asked: unknown[] = [];
    const quick = await rig.run({ inflight: async (q) => { asked.push(q); return { quiet: true, detail: '2 proxy instance(s): nothing in flight to s1' }; } });
    expect(quick.result.outcome).toBe('done');
    expect(asked).toEqual([{ store: 'A', slot: 's1', user: 'user-a' }]);
    const hold = quick.events.find((e) => e.phase === 'hold' && e.status === 'ok')!;
    expect(hold.detail).toMatch(/^A failing-over; 2 proxy instance\(s\): nothing in flight to s1 after \d+ ms$/);
    expect(hold.ms).toBeLessThan(1_000);

    await new Promise((r) => setTimeout(r, 500)); // s2's agent reports the store caught-up as its master
    const slow = await rig.run({ inflight: async () => ({ quiet: false, detail: 'could not ask proxy-2: ECONNREFUSED' }) });
    expect(slow.result.outcome, slow.result.detail).toBe('done');
    const waited = slow.events.find((e) => e.phase === 'hold' && e.status === 'ok')!;
    expect(waited.detail).toBe('A failing-over; waited 1500 ms for deliveries already in DATA (could not ask proxy-2: ECONNREFUSED)');
    expect(waited.ms).toBeGreaterThanOrEqual(1_450);
  });

  it('a flush that cannot empty the log stops the failover before the hold, saying what is pending', async () => {
    rig = await makeRig({ replayFile: ['/bin/false'], failover: { drainTimeoutMs: 1_000 } });
    pend(rig, 's1');
    const { result, events } = await rig.run();
    expect(result.outcome).toBe('aborted');
    expect(result.pending).toMatchObject({ pendingBytes: 37, users: ['alice'] });
    expect(result.detail).toMatch(/flush of s1 failed: .*\/bin\/false exited 1; s1 stalled: 37 bytes pending for alice.*nothing to roll back/);
    expect(phases(events)).toEqual(['lease:ok', 'preflight:ok', 'flush:failed', 'rollback:ok']);
    expect(await storeA(rig)).toMatchObject({ currentMaster: 's1', state: 'active', epoch: 0 });
  });

  it('after the hold, waits until the rolling sync_client has emptied the log, and only then switches', async () => {
    rig = await makeRig();
    rolling = await fakeSyncClient(['-C', rig.slots.get('s1')!.conf, '-r']);
    const log = join(rig.slots.get('s1')!.syncDir, 'log');
    let emptiedAt = 0;
    const { result, events } = await rig.run({
      onEvent: (e) => {
        // A message that was in DATA when the hold began lands after it.
        if (e.phase === 'hold' && e.status === 'start') {
          pend(rig!, 's1');
          setTimeout(() => { unlinkSync(log); emptiedAt = Date.now(); }, 800);
        }
        if (e.phase === 'switch' && e.status === 'start') switchedAt = Date.now();
      },
    });
    expect(result, result.detail).toMatchObject({ outcome: 'done', to: 's2' });
    expect(emptiedAt).toBeGreaterThan(0);
    expect(switchedAt).toBeGreaterThanOrEqual(emptiedAt);
    expect(events.find((e) => e.phase === 'drain' && e.status === 'ok')!.detail).toMatch(/^s1 caught-up/);
  });

  it('a drain that misses its deadline rolls back: store active on the old master, what was pending said', async () => {
    rig = await makeRig({ failover: { drainTimeoutMs: 1_000 } });
    rolling = await fakeSyncClient(['-C', rig.slots.get('s1')!.conf, '-r']);
    const { result, events } = await rig.run({
      onEvent: (e) => { if (e.phase === 'hold' && e.status === 'start') pend(rig!, 's1'); },
    });
    expect(result.outcome).toBe('aborted');
    expect(result.pending).toMatchObject({ pendingBytes: 37, users: ['alice'] });
    expect(result.detail).toMatch(/drain deadline \(1000 ms\) passed with s1 lagging: 37 bytes pending for alice.*rolled back.*store A active on its old master s1/);
    expect(phases(events)).toEqual(['lease:ok', 'preflight:ok', 'flush:ok', 'hold:ok', 'drain:failed', 'rollback:ok']);
    expect(await storeA(rig)).toMatchObject({ currentMaster: 's1', state: 'active', epoch: 0 });
  });

  it('a second run of the same store is refused by the lease while the first holds it', async () => {
    rig = await makeRig();
    const held = await fileLeases(rig.root).acquire('A', 'someone-else', 60_000);
    expect('lease' in held).toBe(true);
    const { result } = await rig.run();
    expect(result).toMatchObject({ outcome: 'refused', detail: expect.stringContaining('another failover of A is running (someone-else') });
    expect(await storeA(rig)).toMatchObject({ currentMaster: 's1', state: 'active' });
    if ('lease' in held) await held.lease.release();
    expect((await rig.run()).result.outcome).toBe('done');
  });

  it('two concurrent runs: one switches, the other is refused', async () => {
    rig = await makeRig();
    const [a, b] = await Promise.all([rig.run(), rig.run()]);
    expect([a.result.outcome, b.result.outcome].sort()).toEqual(['done', 'refused']);
    expect(await storeA(rig)).toMatchObject({ currentMaster: 's2', state: 'active', epoch: 1 });
  });

  it('an expired lease, or one whose runner died, is taken over', async () => {
    rig = await makeRig();
    const stale = await fileLeases(rig.root).acquire('A', 'dead-runner', 1_000);
    expect('lease' in stale).toBe(true);
    await new Promise((r) => setTimeout(r, 1_100));
    expect((await rig.run()).result.outcome).toBe('done');
  });

  it('a failing pre-switch hook aborts: no switch, store active on the old master', async () => {
    rig = await makeRig({ failover: { hooks: { beforeSwitch: [['/bin/sh', '-c', 'echo "stopping {from} on {fromIp}"; exit 3']] } } });
    const { result, events } = await rig.run();
    expect(result.outcome).toBe('aborted');
    expect(result.detail).toContain('pre-switch hook failed');
    expect(result.detail).toContain('exit 3: stopping s1 on 127.0.0.11');
    expect(phases(events)).toContain('rollback:ok');
    expect(await storeA(rig)).toMatchObject({ currentMaster: 's1', state: 'active', epoch: 0 });
  });

  it('a forced crash run on a store that was down, beaten by another failover, rolls back to down, not to active', async () => {
    rig = await makeRig();
    await rig.directory.setStoreState('A', 'down', 'test');
    const r = rig;
    const { result } = await rig.run({ crash: true, force: true, onEvent: (e) => {
      // Someone else fails A over meanwhile: this run's compare-and-set on the epoch loses.
      if (e.phase === 'switch' && e.status === 'start') void r.directory.failover('A', { to: 's2', force: true }, 'other');
    } });
    expect(result.outcome).toBe('aborted');
    expect(result.detail).toMatch(/conflict: .*rolled back .*slot s1 up again, store A down on its old master s1/);
    expect(await storeA(rig)).toMatchObject({ state: 'down' });
  });

  it('a post-switch hook that starts something long-running: the run goes on when the hook exits, and what it started lives on', async () => {
    const pidFile = join(tmpdir(), `storeroute-hook-${process.pid}-${Date.now()}.pid`);
    // The background sleep inherits the hook's stdout and stderr: the run must not wait for it.
    rig = await makeRig({ failover: { hooks: { timeoutMs: 20_000,
      afterSwitch: [['/bin/sh', '-c', 'sleep 30 & echo $! > "$1"; echo started {to}', 'sh', pidFile]] } } });
    const { result, events } = await rig.run();
    const pid = Number(readFileSync(pidFile, 'utf8'));
    try {
      expect(result.outcome, result.detail).toBe('done');
      const hook = events.find((e) => e.phase === 'post-switch' && e.status === 'ok')!;
      expect(hook.detail).toBe('1 hook(s) ok');
      expect(hook.ms).toBeLessThan(5_000);
      expect(() => process.kill(pid, 0)).not.toThrow(); // still running
    } finally {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
      unlinkSync(pidFile);
    }
  });

  it('Ctrl-C after the pre-switch hooks ran does not stop the run: they may have stopped the old master', async () => {
    rig = await makeRig({ failover: { hooks: { beforeSwitch: [['/bin/true']] } } });
    const abort = new AbortController();
    const { result, events } = await rig.run({ signal: abort.signal, onEvent: (e) => { if (e.phase === 'pre-switch' && e.status === 'ok') abort.abort(); } });
    expect(phases(events)).toEqual(expect.arrayContaining(['pre-switch:ok', 'switch:ok', 'release:ok', 'verify:skipped']));
    expect(result.outcome).toBe('done');
    expect(await storeA(rig)).toMatchObject({ currentMaster: 's2', state: 'active', epoch: 1 });
  });

  it('a hook that hangs is killed at its timeout, with what it started', async () => {
    rig = await makeRig({ failover: { hooks: { timeoutMs: 300, beforeSwitch: [['/bin/sh', '-c', 'sleep 30 & echo $! > "$0"; wait', join('/tmp', `hang-${process.pid}`)]] } } });
    const t0 = Date.now();
    const { result } = await rig.run();
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect(result.outcome).toBe('aborted');
    expect(result.detail).toMatch(/killed after \d+ ms \(timeout\)/);
    const pid = Number(readFileSync(join('/tmp', `hang-${process.pid}`), 'utf8'));
    // Gone, or a zombie nobody reaped yet (PID 1 in a container may never): either way, not running.
    const alive = () => { try { return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8')); } catch { return false; } };
    await new Promise((r) => setTimeout(r, 100));
    expect(alive()).toBe(false);
    expect(await storeA(rig)).toMatchObject({ currentMaster: 's1', state: 'active' });
  });

  it('a failing post-switch hook keeps the switch and marks the store for attention', async () => {
    rig = await makeRig({ failover: { hooks: { afterSwitch: [['/bin/sh', '-c', 'echo "no ip {toIp}" >&2; exit 1']] } } });
    const { result, events } = await rig.run();
    expect(result.outcome).toBe('attention');
    expect(result.detail).toContain('post-switch hook failed');
    expect(phases(events)).toEqual(expect.arrayContaining(['switch:ok', 'post-switch:failed', 'release:ok']));
    expect(await storeA(rig)).toMatchObject({ currentMaster: 's2', state: 'active', epoch: 1 });
    const status = await rig.directory.readStatus('failover');
    expect(status.A).toMatchObject({ attention: expect.stringContaining('no ip 127.0.0.12'), from: 's1', to: 's2' });
  });

  it('Ctrl-C during the hold rolls back and says so', async () => {
    rig = await makeRig({ failover: { holdMs: 10_000 } });
    const abort = new AbortController();
    const p = rig.run({ signal: abort.signal, onEvent: (e) => { if (e.phase === 'hold' && e.status === 'start') setTimeout(() => abort.abort(), 100); } });
    const { result } = await p;
    expect(result.outcome).toBe('interrupted');
    expect(result.detail).toContain('store A active on its old master s1');
    expect(await storeA(rig)).toMatchObject({ currentMaster: 's1', state: 'active', epoch: 0 });
  });
});

describe('crash failover', () => {
  it('marks the old master down, switches without draining, replays, reports the lag lost', async () => {
    rig = await makeRig();
    pend(rig, 's1');
    await rig.agents.get('m1')!.measureNow();
    await rig.agents.get('m1')!.close();
    rig.agents.delete('m1');
    let asked: Date | null = null;
    const { result, events } = await rig.run({
      crash: true,
      replay: async (_store, since) => { asked = since; return { selected: 2, delivered: 2, alreadyPresent: 0, failed: 0, refused: 0 }; },
    });
    expect(result).toMatchObject({ outcome: 'done', to: 's2', lostLag: { slot: 's1', pendingBytes: 37, users: ['alice'] }, replay: { delivered: 2 } });
    expect(asked).not.toBeNull();
    expect(phases(events)).toEqual(['lease:ok', 'preflight:ok', 'hold:ok', 'mark-down:ok', 'drain:skipped', 'pre-switch:skipped',
      'switch:ok', 'post-switch:skipped', 'release:ok', 'verify:ok']);
    expect((await rig.directory.getSlot('s1'))!.state).toBe('down');
    expect(await storeA(rig)).toMatchObject({ currentMaster: 's2', state: 'active', epoch: 1 });
  });
});
