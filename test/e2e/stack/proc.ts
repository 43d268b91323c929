/**
 * Child processes of the e2e stack. Every daemon is spawned detached (its own process group), so
 * one `kill(-pgid)` also takes down what it forked (Cyrus services, postfix daemons). Every group
 * is remembered until it is reaped, and a process `exit` hook SIGKILLs what is left: a failed or
 * interrupted run leaves no daemons behind.
 */
import { spawn, execFile, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { openSync, closeSync, readFileSync, existsSync } from 'node:fs';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

const liveGroups = new Set<number>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const pgid of liveGroups) {
      try {
        process.kill(-pgid, 'SIGKILL');
      } catch {
        // Already gone: nothing to clean.
      }
    }
  });
}

export interface Daemon {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  /** Resolves with the exit code (or signal name) once the process has exited. */
  readonly exited: Promise<number | string>;
  /** True once the main process has exited. */
  readonly dead: boolean;
  /** SIGTERM the group, then SIGKILL the group if it has not exited within `graceMs`. */
  stop(graceMs?: number): Promise<void>;
  /** SIGKILL the whole group at once (a crash). */
  kill(): Promise<void>;
}

export interface SpawnDaemonOptions {
  /** stdout and stderr are appended here. */
  logFile: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  uid?: number;
  gid?: number;
}

export function spawnDaemon(name: string, cmd: string, args: string[], opts: SpawnDaemonOptions): Daemon {
  installExitHook();
  const fd = openSync(opts.logFile, 'a');
  const spawnOpts: SpawnOptions = {
    detached: true,
    stdio: ['ignore', fd, fd],
    env: opts.env ?? process.env,
    cwd: opts.cwd,
  };
  if (opts.uid !== undefined) spawnOpts.uid = opts.uid;
  if (opts.gid !== undefined) spawnOpts.gid = opts.gid;
  const child = spawn(cmd, args, spawnOpts);
  closeSync(fd);
  if (child.pid === undefined) throw new Error(`${name}: could not spawn ${cmd}`);
  const pid = child.pid;
  liveGroups.add(pid);
  let dead = false;
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => {
      dead = true;
      resolve(code ?? signal ?? 'unknown');
    });
    child.once('error', () => {
      dead = true;
      resolve('spawn-error');
    });
  });

  function signalGroup(sig: NodeJS.Signals): void {
    try {
      process.kill(-pid, sig);
    } catch {
      // The group is already empty.
    }
  }

  async function stop(graceMs = 10_000): Promise<void> {
    if (!dead) {
      signalGroup('SIGTERM');
      const timer = new Promise((r) => setTimeout(r, graceMs).unref());
      await Promise.race([exited, timer]);
    }
    // Children that outlived the leader (or a leader that ignored TERM) go now.
    signalGroup('SIGKILL');
    await exited;
    liveGroups.delete(pid);
  }

  async function kill(): Promise<void> {
    signalGroup('SIGKILL');
    await exited;
    liveGroups.delete(pid);
  }

  return {
    name, child, pid, exited, stop, kill,
    get dead() {
      return dead;
    },
  };
}

/** A process group not spawned by us (postfix's master, which calls setsid) to kill at exit. */
export function trackGroup(pgid: number): () => void {
  installExitHook();
  liveGroups.add(pgid);
  return () => liveGroups.delete(pgid);
}

/** Runs a command to completion; rejects with its output on a non-zero exit. */
export async function run(cmd: string, args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<string> {
  if (opts.input !== undefined) {
    return new Promise((resolve, reject) => {
      const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env: opts.env ?? process.env });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (out += d.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
      child.on('error', reject);
      child.on('close', (code) => {
        clearTimeout(timer);
        if (code === 0) resolve(out);
        else reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${out.trim()}`));
      });
      child.stdin.end(opts.input);
    });
  }
  try {
    const { stdout } = await execFileP(cmd, args, { env: opts.env ?? process.env, timeout: opts.timeoutMs ?? 30_000, maxBuffer: 16 * 1024 * 1024 });
    return stdout;
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${e.message}\n${e.stdout ?? ''}${e.stderr ?? ''}`.trim());
  }
}

/** Last `lines` lines of a log file, or a note when it does not exist (for failure reports). */
export function tail(file: string, lines = 40): string {
  if (!existsSync(file)) return `(${file} does not exist)`;
  const text = readFileSync(file, 'utf8');
  return text.split('\n').slice(-lines - 1).join('\n');
}

/** Numeric uid/gid of a system user (cyrus, postfix), read from /etc/passwd. */
export function systemUser(name: string): { uid: number; gid: number } {
  const line = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith(`${name}:`));
  if (!line) throw new Error(`system user ${name} does not exist (run scripts/install-deps.sh)`);
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}
