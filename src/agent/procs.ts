/**
 * Which sync_client processes run on this machine, read from /proc (Linux). The agent must see
 * Cyrus's processes: run it on the host, or in a container that shares the host's PID namespace.
 *
 * Facts from Cyrus 3.6.1 (Debian 12) that shape this:
 * - `sync_client -r` (rolling) and `sync_client -r -1` daemonize: the parent exits 0 at once and
 *   the worker carries on under PID 1 with the same argv. So "is a rolling client running for this
 *   slot" can only be answered from the process table, never from a child we hold.
 * - `sync_client -r -f FILE` and `sync_client -u USER` stay in the foreground and exit when done.
 * - A process whose parent does not reap it stays a zombie (state Z, empty cmdline): `kill -0`
 *   still succeeds on it, so liveness is read from /proc/<pid>/stat, not from signals.
 */
import { closeSync, openSync, readdirSync, readFileSync, readlinkSync, readSync, realpathSync } from 'node:fs';
import { basename, resolve } from 'node:path';

export interface SyncClientProcess {
  pid: number;
  /** The -C file, absolute ("/etc/imapd.conf" when absent, Cyrus's default). */
  conf: string;
  /** -n channel, or null for the default channel. */
  channel: string | null;
  /** -r without -f: the rolling client that consumes the channel's log. */
  rolling: boolean;
  /** -f FILE (absolute), when the process works on one named file. */
  file: string | null;
}

/** Options of sync_client that take a value (3.6.1 binary's getopt string: "C:vlLS:F:f:w:t:d:n:rRNumsozOAp:1"). */
const WITH_VALUE = new Set(['C', 'S', 'F', 'f', 'w', 't', 'd', 'n', 'p']);

/** getopt-style parse: `-r -f x`, `-rf x` and `-fx` all mean the same to Cyrus. */
export function parseSyncClientArgs(argv: string[], cwd: string): Omit<SyncClientProcess, 'pid'> {
  const flags = new Set<string>();
  const values = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (arg === '--') break;
    if (!arg.startsWith('-') || arg === '-') continue;
    for (let j = 1; j < arg.length; j++) {
      const opt = arg[j] as string;
      if (WITH_VALUE.has(opt)) {
        const rest = arg.slice(j + 1);
        values.set(opt, rest !== '' ? rest : (argv[++i] ?? ''));
        break;
      }
      flags.add(opt);
    }
  }
  const file = values.get('f');
  return {
    conf: resolve(cwd, values.get('C') ?? '/etc/imapd.conf'),
    channel: values.get('n') ?? null,
    rolling: flags.has('r') && file === undefined,
    file: file === undefined ? null : resolve(cwd, file),
  };
}

/** How much of a /proc/<pid>/cmdline is read to decide whether it is a sync_client at all. */
const CMDLINE_PROBE_BYTES = 4096;

/**
 * Up to `buf.length` bytes of a /proc file (null once the process has gone). One read: the kernel
 * hands /proc/<pid>/cmdline and stat out in a single read of this size. Not readFile: /proc files
 * stat as empty, for which Node allocates 64 KiB per call (measured: a machine's scan allocated
 * ~16 MB per round, and that garbage was most of the agent's RSS and GC).
 */
function readProcFile(path: string, buf: Buffer): string | null {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return null;
  }
  try {
    return buf.toString('latin1', 0, readSync(fd, buf, 0, buf.length, 0));
  } catch {
    return null;
  } finally {
    closeSync(fd);
  }
}

/**
 * Every sync_client on the machine (one /proc walk, shared by all slots of a round).
 *
 * Synchronous on purpose, like the sync-log reader: a walk is a few hundred tiny reads of an
 * in-memory filesystem, ~5 µs each as syscalls but ~15 µs of CPU each through libuv's threadpool
 * (measured on 80 processes: 13 ms of CPU per walk with fs/promises, 1.5 ms synchronous), and the
 * agent's whole round must cost about what a bare `du -s` of the sync directories costs. The
 * event loop is held for about a millisecond per round.
 */
export async function scanSyncClients(procRoot = '/proc'): Promise<SyncClientProcess[]> {
  let entries: string[];
  try {
    entries = readdirSync(procRoot);
  } catch {
    return [];
  }
  const buf = Buffer.allocUnsafe(CMDLINE_PROBE_BYTES);
  const found: SyncClientProcess[] = [];
  for (const name of entries) {
    if (!/^\d+$/.test(name)) continue;
    const cmdline = `${procRoot}/${name}/cmdline`;
    let raw = readProcFile(cmdline, buf);
    if (raw === null) continue; // Exited between readdir and read: not running.
    const argv0 = raw.slice(0, raw.indexOf('\0') >= 0 ? raw.indexOf('\0') : raw.length);
    if (basename(argv0) !== 'sync_client') continue;
    if (raw.length === buf.length) {
      try {
        raw = readFileSync(cmdline, 'latin1'); // an argv longer than the probe: read all of it
      } catch {
        continue;
      }
    }
    const argv = raw.split('\0');
    if (argv[argv.length - 1] === '') argv.pop();
    // -C may be relative to the process's own working directory.
    let cwd = '/';
    try {
      cwd = readlinkSync(`${procRoot}/${name}/cwd`);
    } catch {
      // Gone, or not ours to look at: resolve against / (what Cyrus's default path is anyway).
    }
    const parsed = parseSyncClientArgs(argv.slice(1), cwd);
    // Compared with the slot's own realpath'd imapd.conf: a symlinked -C path is the same slot.
    try {
      parsed.conf = realpathSync(parsed.conf);
    } catch {
      // A -C file that does not resolve is compared as written.
    }
    found.push({ pid: Number(name), ...parsed });
  }
  return found.sort((a, b) => a.pid - b.pid);
}

export type PidState = 'alive' | 'zombie' | 'gone';

/** Whether a PID names a running process (a zombie has finished: it counts as dead). */
export async function pidState(pid: number, procRoot = '/proc'): Promise<PidState> {
  // "pid (comm) S …" fits in 1 KiB: comm is at most 16 bytes.
  const stat = readProcFile(`${procRoot}/${pid}/stat`, Buffer.allocUnsafe(1024));
  if (stat === null || stat === '') return 'gone';
  // comm may hold spaces and parentheses: the state follows the last ")".
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  return state === 'Z' || state === 'X' ? 'zombie' : 'alive';
}
