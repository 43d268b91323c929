/**
 * One slot's replication backlog, read from its sync log directory. Never throws: every problem
 * (missing or unreadable directory, a file that vanished or cannot be opened) is a state in the
 * reading, because a crash here would blind the control plane exactly when replication breaks.
 *
 * What lives in the directory (Cyrus 3.6.1, Debian 12, tried with the e2e harness's slots):
 * - `log`: appended to by lmtpd/imapd/pop3d, one record per change (see records.ts). Created by
 *   the first record, together with the directory itself (sync_log.c: cyrus_mkdir on ENOENT), so a
 *   missing sync directory under an existing configdirectory only means nothing was ever logged.
 * - `log-run`: the rolling `sync_client -r` renames `log` to `log-run`, replays it, then unlinks
 *   it. When the replica goes away the client exits (it is meant to be restarted by master's
 *   DAEMON section) leaving `log-run`, and new records start a fresh `log`: both are pending. A
 *   client (re)started finds `log-run` first ("Reprocessing sync log file") and then takes `log`.
 *   A client started while the replica is down stays alive retrying the connection (15 s, 30 s,
 *   60 s …), so "running" does not mean "making progress".
 * - `log-<PID>`: left by older Cyrus versions (2.x) whose rolling client died; 3.6 never writes
 *   them (no such name format in its binaries) but sites moving from 2.x, and tools like
 *   FastMail's monitorsync, still produce and expect them.
 * Records carry no time, so the age of the oldest pending record is the birth time of the oldest
 * non-empty pending file (the first record created it; ext4 keeps birth time and Node reads it
 * through statx). Rename changes ctime, never birth or mtime. Where the filesystem keeps no birth
 * time, mtime (the last record) is used: an age that can only be too young.
 *
 * Synchronous inside (a reading is a handful of syscalls on a local directory; see procs.ts for
 * what the threadpool would cost), and incremental for user names (see user-scan.ts).
 */
import { readdirSync, statSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { errnoCode } from './errors.js';
import { pidState, type PidState, type SyncClientProcess } from './procs.js';
import { UserScan } from './user-scan.js';

/**
 * At most this many users are named per reading (the first, sorted; `usersTruncated` says there
 * are more). Enough for a human chasing a split-brain; without it a backlog over 1,000 users made
 * a 64-slot report ~600 KB, rewritten into the directory every round and parsed by every reader.
 */
export const REPORTED_USERS_MAX = 100;

export type PendingFileKind = 'log' | 'log-run' | 'log-pid' | 'log-other';

export interface PendingFile {
  name: string;
  kind: PendingFileKind;
  bytes: number;
  /** Epoch ms of the first record (birth time; mtime where the filesystem keeps none). */
  firstRecordAt: number;
  /** Epoch ms of the last record (mtime). */
  lastRecordAt: number;
  /** For `log-<PID>`: the PID in the name, whether it runs, and whether it is a sync_client. */
  pid?: number;
  pidState?: PidState;
  pidIsSyncClient?: boolean;
  /** sync_client processes working this file now (-f FILE, or the rolling client for log-run). */
  workedBy: number[];
  /** Pending records nothing is working on and nothing will pick up by itself: a repair target. */
  orphan: boolean;
  /** Why its records could not be read for user names (its bytes still count). */
  readError?: string;
}

export type SyncDirStatus = 'ok' | 'no-sync-dir' | 'error';

export interface SyncDirReading {
  dir: string;
  /** ok; no-sync-dir (nothing ever logged: nothing pending); error (see `error`: state unknown). */
  status: SyncDirStatus;
  error?: { code: string; message: string };
  /** Bytes of every non-empty `log` and `log-*`. */
  pendingBytes: number;
  oldestPendingAgeMs: number | null;
  files: PendingFile[];
  rollingClient: { running: boolean; pids: number[] };
  /** Users named by the pending records (the first `userScanBytes` of them), at most REPORTED_USERS_MAX. */
  users: string[];
  usersTruncated: boolean;
  unattributedRecords: number;
  measuredAt: number;
}

export interface ReadSyncDirOptions {
  dir: string;
  configDirectory: string;
  /** The slot's imapd.conf, realpath'd (what a sync_client's -C must resolve to). */
  conf: string;
  channel: string | null;
  /** The machine's sync_client processes, scanned once per round. */
  procs: SyncClientProcess[];
  /** At most this many bytes of pending records (from the oldest) are scanned for user names. */
  userScanBytes: number;
  /** What earlier readings of this slot parsed (the agent keeps one per slot); absent: parse from scratch. */
  userScan?: UserScan;
  now?: number;
  procRoot?: string;
}

function kindOf(name: string): { kind: PendingFileKind; pid?: number } | null {
  if (name === 'log') return { kind: 'log' };
  if (name === 'log-run') return { kind: 'log-run' };
  const m = /^log-(\d{1,10})$/.exec(name);
  if (m) return { kind: 'log-pid', pid: Number(m[1]) };
  return name.startsWith('log-') ? { kind: 'log-other' } : null;
}

function failed(opts: ReadSyncDirOptions, now: number, code: string, message: string): SyncDirReading {
  return {
    dir: opts.dir, status: 'error', error: { code, message }, pendingBytes: 0, oldestPendingAgeMs: null, files: [],
    rollingClient: rollingOf(opts), users: [], usersTruncated: false, unattributedRecords: 0, measuredAt: now,
  };
}

function rollingOf(opts: ReadSyncDirOptions): { running: boolean; pids: number[] } {
  const pids = opts.procs.filter((p) => p.rolling && p.conf === opts.conf && p.channel === opts.channel).map((p) => p.pid);
  return { running: pids.length > 0, pids };
}

function statOrNull(path: string): Stats | null {
  try {
    return statSync(path);
  } catch {
    return null;
  }
}

export async function readSyncDir(opts: ReadSyncDirOptions): Promise<SyncDirReading> {
  const now = opts.now ?? Date.now();
  let names: string[];
  try {
    names = readdirSync(opts.dir);
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'ENOENT') {
      if (!statOrNull(opts.configDirectory)?.isDirectory()) {
        return failed(opts, now, 'CONFIG_DIR_MISSING', `configdirectory ${opts.configDirectory} does not exist`);
      }
      const { error: _none, ...empty } = failed(opts, now, '', '');
      return { ...empty, status: 'no-sync-dir' };
    }
    if (code === 'EACCES' || code === 'EPERM') return failed(opts, now, 'UNREADABLE', `cannot list ${opts.dir}: ${code}`);
    if (code === 'ENOTDIR') return failed(opts, now, 'NOT_A_DIRECTORY', `${opts.dir} is not a directory`);
    return failed(opts, now, code, `cannot list ${opts.dir}: ${(err as Error).message}`);
  }

  const rolling = rollingOf(opts);
  const files: PendingFile[] = [];
  const stats = new Map<string, Stats>();
  for (const name of names) {
    const kind = kindOf(name);
    if (!kind) continue;
    const path = join(opts.dir, name);
    const st = statOrNull(path);
    // Gone between readdir and stat (consumed by the client), or a channel's subdirectory.
    if (!st || !st.isFile()) continue;
    stats.set(name, st);
    const birth = st.birthtimeMs > 0 && st.birthtimeMs <= st.mtimeMs + 1 ? st.birthtimeMs : st.mtimeMs;
    const workedBy = opts.procs.filter((p) => p.file === path).map((p) => p.pid);
    if (kind.kind === 'log-run') workedBy.push(...rolling.pids);
    const file: PendingFile = {
      name, kind: kind.kind, bytes: st.size, firstRecordAt: Math.round(birth), lastRecordAt: Math.round(st.mtimeMs), workedBy, orphan: false,
    };
    if (kind.pid !== undefined) {
      file.pid = kind.pid;
      file.pidState = await pidState(kind.pid, opts.procRoot);
      file.pidIsSyncClient = opts.procs.some((p) => p.pid === kind.pid);
    }
    // `log` is the rolling client's to take; anything else with records and no worker is stuck.
    // A log-<PID> whose PID lives but is not a sync_client names a reused PID: its owner is gone.
    const ownerAlive = file.pidState === 'alive' && file.pidIsSyncClient === true;
    file.orphan = kind.kind !== 'log' && st.size > 0 && workedBy.length === 0 && !ownerAlive;
    files.push(file);
  }
  files.sort((a, b) => a.firstRecordAt - b.firstRecordAt || a.name.localeCompare(b.name));

  const pending = files.filter((f) => f.bytes > 0);
  const pendingBytes = pending.reduce((sum, f) => sum + f.bytes, 0);
  const oldest = pending.length > 0 ? Math.min(...pending.map((f) => f.firstRecordAt)) : null;

  // A reading without the agent's scan state parses from scratch and closes what it opened.
  const scan = opts.userScan ?? new UserScan();
  let budget = opts.userScanBytes;
  let usersTruncated = false;
  for (const f of pending) {
    const limit = Math.min(f.bytes, Math.max(0, budget));
    budget -= limit;
    usersTruncated ||= limit < f.bytes;
    if (limit === 0) continue;
    try {
      scan.scan(join(opts.dir, f.name), stats.get(f.name) as Stats, limit);
    } catch (err) {
      // Consumed meanwhile (ENOENT) is not worth a note; a permission problem is.
      if (errnoCode(err) !== 'ENOENT') f.readError = `${errnoCode(err)}: cannot read ${f.name} for user names`;
    }
  }
  const { users, unattributed: unattributedRecords } = scan.endReading();
  if (!opts.userScan) scan.close();
  usersTruncated ||= users.length > REPORTED_USERS_MAX;

  return {
    dir: opts.dir, status: 'ok', pendingBytes, oldestPendingAgeMs: oldest === null ? null : Math.max(0, now - oldest),
    files, rollingClient: rolling, users: users.slice(0, REPORTED_USERS_MAX), usersTruncated, unattributedRecords, measuredAt: now,
  };
}
