import { describe, it, expect, afterEach } from 'vitest';
import { execFile, spawn } from 'node:child_process';
import { appendFileSync, chmodSync, chownSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { ChildProcess } from 'node:child_process';
import { readSyncDir, REPORTED_USERS_MAX, type ReadSyncDirOptions } from '../../src/agent/sync-log.js';
import { UserScan } from '../../src/agent/user-scan.js';
import { scanSyncClients, parseSyncClientArgs, pidState } from '../../src/agent/procs.js';
import { makeSlot, fakeSyncClient, sleeper, deadPid, stop, type TmpSlot } from './helpers.js';
import { waitFor } from '../helpers/ports.js';

const execFileP = promisify(execFile);
let slot: TmpSlot | undefined;
const children: ChildProcess[] = [];
afterEach(async () => {
  for (const c of children.splice(0)) await stop(c);
  slot?.cleanup();
  slot = undefined;
});

async function read(s: TmpSlot, extra: Partial<ReadSyncDirOptions> = {}) {
  return readSyncDir({
    dir: s.syncDir, configDirectory: s.configDirectory, conf: s.conf, channel: null,
    procs: await scanSyncClients(), userScanBytes: 1024 * 1024, ...extra,
  });
}

describe('readSyncDir on made-up slot directories', () => {
  it('empty directory: nothing pending', async () => {
    slot = makeSlot();
    const r = await read(slot);
    expect(r).toMatchObject({ status: 'ok', pendingBytes: 0, oldestPendingAgeMs: null, files: [], users: [], rollingClient: { running: false } });
  });

  it('no sync directory under an existing configdirectory: nothing was ever logged', async () => {
    slot = makeSlot([], { createSyncDir: false });
    const r = await read(slot);
    expect(r.status).toBe('no-sync-dir');
    expect(r.pendingBytes).toBe(0);
    expect(r.error).toBeUndefined();
  });

  it('missing configdirectory or a sync "directory" that is a file: an error state, not a crash', async () => {
    slot = makeSlot([], { createSyncDir: false });
    rmSync(slot.configDirectory, { recursive: true });
    expect((await read(slot)).error?.code).toBe('CONFIG_DIR_MISSING');
    mkdirSync(slot.configDirectory);
    writeFileSync(slot.syncDir, 'not a directory');
    const r = await read(slot);
    expect(r).toMatchObject({ status: 'error', error: { code: 'NOT_A_DIRECTORY' }, pendingBytes: 0 });
  });

  it('a growing log: bytes, users and the age of its first record', async () => {
    slot = makeSlot();
    const log = join(slot.syncDir, 'log');
    writeFileSync(log, 'APPEND user.alice\nMAILBOX user.alice\n');
    const first = await read(slot);
    expect(first.pendingBytes).toBe(37);
    expect(first.users).toEqual(['alice']);
    appendFileSync(log, 'APPEND user.bob\nMAILBOX user.bob\n');
    const later = await read(slot, { now: Date.now() + 30_000 });
    expect(later.pendingBytes).toBe(37 + 33);
    expect(later.users).toEqual(['alice', 'bob']);
    expect(later.oldestPendingAgeMs).toBeGreaterThanOrEqual(29_000);
    expect(later.files).toEqual([expect.objectContaining({ name: 'log', kind: 'log', orphan: false })]);
  });

  it('an empty log file is not pending', async () => {
    slot = makeSlot();
    writeFileSync(join(slot.syncDir, 'log'), '');
    const r = await read(slot);
    expect(r.pendingBytes).toBe(0);
    expect(r.oldestPendingAgeMs).toBeNull();
  });

  it('log-<PID> files: a live sync_client owns its file, a dead PID or a reused PID (not sync_client) leaves an orphan', async () => {
    slot = makeSlot();
    const owner = await fakeSyncClient(['-C', slot.conf, '-r']);
    const stranger = sleeper();
    children.push(owner, stranger);
    const dead = await deadPid();
    for (const pid of [owner.pid, stranger.pid, dead]) writeFileSync(join(slot.syncDir, `log-${pid}`), `APPEND user.u${pid}\n`);
    const r = await read(slot);
    const byPid = new Map(r.files.map((f) => [f.pid, f]));
    expect(byPid.get(owner.pid)).toMatchObject({ kind: 'log-pid', pidState: 'alive', pidIsSyncClient: true, orphan: false });
    expect(byPid.get(stranger.pid)).toMatchObject({ pidState: 'alive', pidIsSyncClient: false, orphan: true });
    expect(byPid.get(dead)).toMatchObject({ pidState: 'gone', orphan: true });
    expect(r.users).toHaveLength(3);
  });

  it('log-run is an orphan only while no rolling client for this slot and channel runs and no -f works on it', async () => {
    slot = makeSlot(['sync_log_channels: "" other']);
    writeFileSync(join(slot.syncDir, 'log-run'), 'MAILBOX user.carol\n');
    expect((await read(slot)).files[0]).toMatchObject({ name: 'log-run', orphan: true });

    // A rolling client of another channel, or of another slot's conf, does not count.
    const otherChannel = await fakeSyncClient(['-C', slot.conf, '-n', 'other', '-r']);
    const otherSlot = await fakeSyncClient(['-C', '/etc/imapd-other.conf', '-r']);
    children.push(otherChannel, otherSlot);
    const r1 = await read(slot);
    expect(r1.rollingClient.running).toBe(false);
    expect(r1.files[0]?.orphan).toBe(true);

    const worker = await fakeSyncClient(['-C', slot.conf, '-r', '-f', join(slot.syncDir, 'log-run')]);
    children.push(worker);
    expect((await read(slot)).files[0]).toMatchObject({ orphan: false, workedBy: [worker.pid] });
    await stop(worker);

    const rolling = await fakeSyncClient(['-rC', slot.conf]);
    children.push(rolling);
    const r2 = await read(slot);
    expect(r2.rollingClient).toEqual({ running: true, pids: [rolling.pid] });
    expect(r2.files[0]).toMatchObject({ orphan: false, workedBy: [rolling.pid] });
  });

  it('caps how much it reads for user names and says so', async () => {
    slot = makeSlot();
    writeFileSync(join(slot.syncDir, 'log'), 'APPEND user.alice\nAPPEND user.bob\nAPPEND user.carol\n');
    const r = await read(slot, { userScanBytes: 30 });
    expect(r.pendingBytes).toBe(52);
    expect(r.users).toEqual(['alice']);
    expect(r.usersTruncated).toBe(true);
  });

  it('with a UserScan, parses each record once across readings; a line still being written waits for its newline', async () => {
    slot = makeSlot();
    const log = join(slot.syncDir, 'log');
    const userScan = new UserScan();
    writeFileSync(log, 'APPEND user.alice\nANNOTATION ""\nAPPEND user.bo');
    expect(await read(slot, { userScan })).toMatchObject({ users: ['alice'], unattributedRecords: 1, usersTruncated: false });
    appendFileSync(log, 'b\nMAILBOX user.carol\n');
    const grown = await read(slot, { userScan });
    expect(grown).toMatchObject({ users: ['alice', 'bob', 'carol'], unattributedRecords: 1 });
    expect(await read(slot)).toMatchObject({ users: grown.users, unattributedRecords: 1 });

    // The rolling client renames log to log-run (the same file, already parsed); a new log starts.
    renameSync(log, join(slot.syncDir, 'log-run'));
    writeFileSync(log, 'USER dave\n');
    expect(await read(slot, { userScan })).toMatchObject({ users: ['alice', 'bob', 'carol', 'dave'], unattributedRecords: 1 });

    // Both consumed; a new log (which may reuse a consumed file's inode) is read from its start.
    rmSync(join(slot.syncDir, 'log-run'));
    rmSync(log);
    writeFileSync(log, 'APPEND user.erin\n');
    expect(await read(slot, { userScan })).toMatchObject({ users: ['erin'], unattributedRecords: 0 });
  });

  it('with a UserScan, the cap still holds as the log grows', async () => {
    slot = makeSlot();
    const log = join(slot.syncDir, 'log');
    const userScan = new UserScan();
    writeFileSync(log, 'APPEND user.alice\n');
    expect(await read(slot, { userScan, userScanBytes: 30 })).toMatchObject({ users: ['alice'], usersTruncated: false });
    appendFileSync(log, 'APPEND user.bob\nAPPEND user.carol\n');
    expect(await read(slot, { userScan, userScanBytes: 30 })).toMatchObject({ users: ['alice'], usersTruncated: true });
  });

  it('names at most REPORTED_USERS_MAX users (the first, sorted) and says there are more', async () => {
    slot = makeSlot();
    const names = Array.from({ length: REPORTED_USERS_MAX + 20 }, (_, i) => `u${String(i).padStart(4, '0')}`);
    writeFileSync(join(slot.syncDir, 'log'), names.reverse().map((u) => `APPEND user.${u}\n`).join(''));
    const r = await read(slot, { userScan: new UserScan() });
    expect(r.users).toEqual([...names].sort().slice(0, REPORTED_USERS_MAX));
    expect(r.usersTruncated).toBe(true);
  });

  const asRoot = process.getuid?.() === 0;
  it.skipIf(!asRoot)('an unreadable directory, and an unreadable file, as the unprivileged user sees them', async () => {
    slot = makeSlot();
    chmodSync(slot.root, 0o755);
    writeFileSync(join(slot.syncDir, 'log'), 'APPEND user.alice\n');
    chmodSync(join(slot.syncDir, 'log'), 0o600);
    const opts = { dir: slot.syncDir, configDirectory: slot.configDirectory, conf: slot.conf, channel: null, procs: [], userScanBytes: 4096 };
    const asNobody = async () => {
      const { stdout } = await execFileP(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'read-as-child.ts'), JSON.stringify(opts)],
        { uid: 65534, gid: 65534, cwd: process.cwd() });
      return JSON.parse(stdout) as Awaited<ReturnType<typeof readSyncDir>>;
    };
    const fileLocked = await asNobody();
    expect(fileLocked).toMatchObject({ status: 'ok', pendingBytes: 18, users: [] });
    expect(fileLocked.files[0]?.readError).toMatch(/^EACCES/);

    chmodSync(slot.syncDir, 0o700);
    chownSync(slot.syncDir, 0, 0);
    const dirLocked = await asNobody();
    expect(dirLocked).toMatchObject({ status: 'error', error: { code: 'UNREADABLE' }, pendingBytes: 0 });
  });
});

describe('sync_client process table', () => {
  it('parses argv as getopt does', () => {
    expect(parseSyncClientArgs(['-C', 'imapd.conf', '-S', 'x', '-r'], '/etc/cyrus')).toEqual(
      { conf: '/etc/cyrus/imapd.conf', channel: null, rolling: true, file: null });
    expect(parseSyncClientArgs(['-rvn', 'chanA', '-Cfoo.conf'], '/')).toMatchObject({ conf: '/foo.conf', channel: 'chanA', rolling: true });
    expect(parseSyncClientArgs(['-r', '-f', '/x/log-run'], '/')).toMatchObject({ conf: '/etc/imapd.conf', rolling: false, file: '/x/log-run' });
    expect(parseSyncClientArgs(['-u', 'alice'], '/')).toMatchObject({ rolling: false, file: null });
  });

  it('tells alive, gone and zombie apart', async () => {
    const s = sleeper();
    children.push(s);
    expect(await pidState(s.pid)).toBe('alive');
    expect(await pidState(await deadPid())).toBe('gone');
    // The background sleep exits under a parent (sleep, after exec) that never reaps it: a zombie, as a
    // daemonized sync_client becomes under a PID 1 that does not reap.
    const parent = spawn('/bin/sh', ['-c', 'sleep 0.2 & echo $!; exec sleep 120'], { stdio: ['ignore', 'pipe', 'ignore'] });
    children.push(parent);
    const zombie = Number(await new Promise<string>((r) => parent.stdout.once('data', (d: Buffer) => r(d.toString()))));
    await waitFor(async () => (await pidState(zombie)) === 'zombie', 5_000, 'the zombie');
  });
});
