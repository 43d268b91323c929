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
import { readdir, readFile, readlink, realpath } from 'node:fs/promises';
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

/** Every sync_client on the machine (one /proc walk, shared by all slots of a round). */
export async function scanSyncClients(procRoot = '/proc'): Promise<SyncClientProcess[]> {
  let entries: string[];
  try {
    entries = await readdir(procRoot);
  } catch {
    return [];
  }
  const found: SyncClientProcess[] = [];
  await Promise.all(entries.map(async (name) => {
    if (!/^\d+$/.test(name)) return;
    let raw: string;
    try {
      raw = await readFile(`${procRoot}/${name}/cmdline`, 'latin1');
    } catch {
      return; // Exited between readdir and read: not running.
    }
    const argv = raw.split('\0');
    if (argv[argv.length - 1] === '') argv.pop();
    if (argv.length === 0 || basename(argv[0] ?? '') !== 'sync_client') return;
    // -C may be relative to the process's own working directory.
    const cwd = await readlink(`${procRoot}/${name}/cwd`).catch(() => '/');
    const parsed = parseSyncClientArgs(argv.slice(1), cwd);
    // Compared with the slot's own realpath'd imapd.conf: a symlinked -C path is the same slot.
    parsed.conf = await realpath(parsed.conf).catch(() => parsed.conf);
    found.push({ pid: Number(name), ...parsed });
  }));
  return found.sort((a, b) => a.pid - b.pid);
}

export type PidState = 'alive' | 'zombie' | 'gone';

/** Whether a PID names a running process (a zombie has finished: it counts as dead). */
export async function pidState(pid: number, procRoot = '/proc'): Promise<PidState> {
  let stat: string;
  try {
    stat = await readFile(`${procRoot}/${pid}/stat`, 'latin1');
  } catch {
    return 'gone';
  }
  // "pid (comm) S …": comm may hold spaces and parentheses, the state follows the last ")".
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  return state === 'Z' || state === 'X' ? 'zombie' : 'alive';
}
