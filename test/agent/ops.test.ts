import { describe, it, expect, afterEach } from 'vitest';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runOp, validateOp } from '../../src/agent/ops.js';
import { expandTemplate, runCommand } from '../../src/agent/command.js';
import { pidState } from '../../src/agent/procs.js';
import { AgentError } from '../../src/agent/errors.js';
import { makeSlot, deadPid, fakeSyncClient, stop, type TmpSlot } from './helpers.js';
import { agentConfig, opContext, MASTER_LAYOUT, REPLICA_LAYOUT } from './context.js';
import type { AgentLayout } from '../../src/agent/index.js';
import { waitFor } from '../helpers/ports.js';

let slot: TmpSlot | undefined;
afterEach(() => slot?.cleanup());

async function failure(p: Promise<unknown>): Promise<AgentError> {
  const err = await p.then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(AgentError);
  return err as AgentError;
}

function codeOfSync(f: () => unknown): string {
  try {
    f();
  } catch (err) {
    return (err as AgentError).code;
  }
  return 'no error';
}

describe('the operation allow-list refuses bad input before running anything', () => {
  it('unknown operations, bad user and slot names, unknown keys, deadlines past the limit', async () => {
    slot = makeSlot();
    const ctx = await opContext(agentConfig(slot), MASTER_LAYOUT);
    const v = (name: string, body: unknown) => codeOfSync(() => validateOp(ctx, name, body));
    expect(v('rm', { slot: 's1' })).toBe('OP_UNKNOWN');
    expect(v('../flush', { slot: 's1' })).toBe('OP_UNKNOWN');
    for (const user of ['-oProxyCommand=x', 'Alice', 'a b', 'al;ice', 'alice\n', '', 'a@-x.com', 'alice@']) {
      expect(v('synclog-user', { slot: 's1', user }), user).toBe('OP_BAD_ARGUMENT');
    }
    expect(v('synclog-user', { slot: 's1', user: 'alice@example.com' })).toBe('no error');
    expect(v('flush', {})).toBe('OP_BAD_ARGUMENT');
    expect(v('flush', 'slot=s1')).toBe('OP_BAD_ARGUMENT');
    expect(v('flush', { slot: 's1', shell: 'rm -rf /' })).toBe('OP_BAD_ARGUMENT');
    expect(v('flush', { slot: '-C/etc/x' })).toBe('OP_BAD_ARGUMENT');
    expect(v('flush', { slot: 's2' })).toBe('OP_BAD_ARGUMENT');
    expect(v('flush', { slot: 's1', deadlineMs: 10_000_000 })).toBe('OP_BAD_ARGUMENT');
    expect(v('sync-user', { slot: 's1', user: 'alice' })).toBe('OP_BAD_ARGUMENT');
  });

  it('nothing that pushes records runs on a slot that is not its store\'s current master, or whose role is unknown', async () => {
    slot = makeSlot();
    const marker = join(slot.root, 'ran');
    const config = agentConfig(slot, { commands: { queueUser: ['/usr/bin/touch', marker] } });
    for (const layout of [REPLICA_LAYOUT, null]) {
      const err = await failure(runOp(await opContext(config, layout), 'synclog-user', { slot: 's1', user: 'alice' }));
      expect(err.code).toBe('OP_REFUSED');
    }
    expect(existsSync(marker)).toBe(false);
  });

  it('flushes a master whose store is held for a failover (the drain), but not one whose store is down', async () => {
    slot = makeSlot();
    const config = agentConfig(slot);
    const held: AgentLayout = { ...MASTER_LAYOUT, stores: { A: { slots: ['s1', 's2'], currentMaster: 's1', state: 'failing-over' } } };
    const flushed = await runOp(await opContext(config, held), 'flush', { slot: 's1' });
    expect(flushed.record).toMatchObject({ kind: 'flush', result: 'ok' });
    const down: AgentLayout = { ...MASTER_LAYOUT, stores: { A: { slots: ['s1', 's2'], currentMaster: 's1', state: 'down' } } };
    expect((await failure(runOp(await opContext(config, down), 'flush', { slot: 's1' }))).code).toBe('OP_REFUSED');
    // Pushing single users stays refused while the store is held.
    expect((await failure(runOp(await opContext(config, held), 'synclog-user', { slot: 's1', user: 'alice' }))).code).toBe('OP_REFUSED');
  });

  it('runs the configured command with the validated values as separate arguments', async () => {
    slot = makeSlot();
    const config = agentConfig(slot, { commands: {
      queueUser: ['/usr/bin/touch', join(slot.root, 'queued-{user}')],
      syncUser: ['/usr/bin/touch', join(slot.root, 'sync-{user}-to-{target}')],
    } });
    const ctx = await opContext(config, MASTER_LAYOUT);
    const queued = await runOp(ctx, 'synclog-user', { slot: 's1', user: 'alice@example.com' });
    expect(queued.record).toMatchObject({ kind: 'synclog-user', result: 'ok', commands: [['/usr/bin/touch', join(slot.root, 'queued-alice@example.com')]] });
    await runOp(ctx, 'sync-user', { slot: 's1', user: 'bob', target: 'x9' });
    expect(readdirSync(slot.root)).toEqual(expect.arrayContaining(['queued-alice@example.com', 'sync-bob-to-127.0.0.19']));
    expect((await failure(runOp(ctx, 'sync-user', { slot: 's1', user: 'bob', target: 's1' }))).code).toBe('OP_BAD_ARGUMENT');
    expect((await failure(runOp(ctx, 'sync-user', { slot: 's1', user: 'bob', target: 'zz' }))).code).toBe('OP_BAD_ARGUMENT');
  });

  it('service commands that are not configured are refused; a busy slot is refused at the deadline', async () => {
    slot = makeSlot();
    const ctx = await opContext(agentConfig(slot), MASTER_LAYOUT);
    expect((await failure(runOp(ctx, 'stop-services', { slot: 's1' }))).code).toBe('OP_NOT_CONFIGURED');
    const held = ctx.locks.acquire('s1', 'repair');
    const busy = await failure(runOp(ctx, 'flush', { slot: 's1', deadlineMs: 300 }));
    expect(busy).toMatchObject({ code: 'SLOT_BUSY', facts: { heldBy: 'repair' } });
    if ('release' in held) held.release();
  });

  it('a command past its deadline is killed with everything it started', async () => {
    slot = makeSlot();
    const pidFile = join(slot.root, 'bg.pid');
    const ctx = await opContext(agentConfig(slot, { commands: { stopServices: ['/bin/sh', '-c', `sleep 60 & echo $! > ${pidFile}; wait`] } }), MASTER_LAYOUT);
    const started = Date.now();
    const err = await failure(runOp(ctx, 'stop-services', { slot: 's1', deadlineMs: 500 }));
    expect(err.code).toBe('COMMAND_TIMEOUT');
    expect(Date.now() - started).toBeLessThan(5_000);
    const bg = Number(readFileSync(pidFile, 'utf8'));
    await waitFor(async () => (await pidState(bg)) !== 'alive', 5_000, 'the background sleep to die');
  });

  it('flush with no rolling client: replays leftovers and the log, removes them, answers when empty', async () => {
    slot = makeSlot();
    const replica = join(slot.root, 'replica.log');
    const dead = await deadPid();
    writeFileSync(join(slot.syncDir, `log-${dead}`), 'APPEND user.old\n');
    writeFileSync(join(slot.syncDir, 'log'), 'APPEND user.alice\nMAILBOX user.alice\n');
    // "Replaying" appends the file to replica.log: the command sees the real path of each file.
    const config = agentConfig(slot, { commands: { replayFile: ['/bin/sh', '-c', 'cat "$1" >> "$2"', 'sh', '{file}', replica] } });
    const result = await runOp(await opContext(config, MASTER_LAYOUT), 'flush', { slot: 's1', deadlineMs: 5_000 });
    expect(result).toMatchObject({ pendingBytesBefore: 16 + 37, pendingBytesAfter: 0 });
    expect(result.record.commands).toHaveLength(2);
    expect(readFileSync(replica, 'utf8')).toBe('APPEND user.old\nAPPEND user.alice\nMAILBOX user.alice\n');
    expect(readdirSync(slot.syncDir)).toEqual([]);
  });

  it('flush with a rolling client only waits for it, and fails at its deadline with what is still pending', async () => {
    slot = makeSlot();
    writeFileSync(join(slot.syncDir, 'log'), 'APPEND user.alice\n');
    const rolling = await fakeSyncClient(['-C', slot.conf, '-r']);
    try {
      const config = agentConfig(slot, { commands: { replayFile: ['/usr/bin/touch', join(slot.root, 'must-not-run')] } });
      const err = await failure(runOp(await opContext(config, MASTER_LAYOUT), 'flush', { slot: 's1', deadlineMs: 600 }));
      expect(err).toMatchObject({ code: 'COMMAND_TIMEOUT', facts: { pendingBytes: 18, files: ['log'] } });
      expect(existsSync(join(slot.root, 'must-not-run'))).toBe(false);
    } finally {
      await stop(rolling);
    }
  });

  it('flush whose replay fails answers with the failure and leaves the records for the next try', async () => {
    slot = makeSlot();
    writeFileSync(join(slot.syncDir, 'log'), 'APPEND user.alice\n');
    const config = agentConfig(slot, { commands: { replayFile: ['/bin/false'] } });
    const err = await failure(runOp(await opContext(config, MASTER_LAYOUT), 'flush', { slot: 's1', deadlineMs: 2_000 }));
    expect(err.code).toBe('COMMAND_FAILED');
    // The rename to log-run happened, the failed replay left the records in place for the next try.
    expect(readFileSync(join(slot.syncDir, 'log-run'), 'utf8')).toBe('APPEND user.alice\n');
  });
});

describe('command templates', () => {
  it('substitutes inside elements, expands {channelArgs}, refuses what would be unsafe', () => {
    expect(expandTemplate(['sync_client', '-C', '{conf}', '{channelArgs}', '-S', '{peer}'], { conf: '/c', peer: '10.0.0.2', channel: null }))
      .toEqual(['sync_client', '-C', '/c', '-S', '10.0.0.2']);
    expect(expandTemplate(['x', '{channelArgs}', '--user={user}'], { channel: 'repl', user: '-x' })).toEqual(['x', '-n', 'repl', '--user=-x']);
    expect(codeOfSync(() => expandTemplate(['x', '{peer}'], {}))).toBe('COMMAND_TEMPLATE');
    expect(codeOfSync(() => expandTemplate(['x', '{shell}'], {}))).toBe('COMMAND_TEMPLATE');
    expect(codeOfSync(() => expandTemplate(['x', '{user}'], { user: '-rf' }))).toBe('COMMAND_TEMPLATE');
    expect(codeOfSync(() => expandTemplate(['x', '{user}'], { user: 'a\nb' }))).toBe('COMMAND_TEMPLATE');
  });

  it('a command that daemonizes returns at its exit, not when its pipes close', async () => {
    const started = Date.now();
    // The background sleep keeps the command's stdout open, as a daemonized sync_client -r does.
    const r = await runCommand(['/bin/sh', '-c', 'sleep 30 & echo $!'], 10_000);
    expect(r).toMatchObject({ exitCode: 0 });
    expect(Date.now() - started).toBeLessThan(5_000);
    process.kill(Number(r.output), 'SIGKILL');
  });
});
