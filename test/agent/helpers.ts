/**
 * Real parts for the agent's unit tests: made-up slot directories on disk and real processes
 * whose /proc cmdline reads like sync_client's (a `sh -c 'sleep …'` started with argv0
 * "sync_client", so the agent's /proc scan sees exactly what it sees on a Cyrus machine).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from '../helpers/ports.js';

export interface TmpSlot {
  root: string;
  conf: string;
  configDirectory: string;
  syncDir: string;
  cleanup(): void;
}

/** A slot's imapd.conf and configdirectory in a fresh temporary directory. */
export function makeSlot(extraConf: string[] = [], opts: { createSyncDir?: boolean } = {}): TmpSlot {
  const root = mkdtempSync(join(tmpdir(), 'storeroute-agent-'));
  const configDirectory = join(root, 'conf');
  mkdirSync(configDirectory);
  const syncDir = join(configDirectory, 'sync');
  if (opts.createSyncDir !== false) mkdirSync(syncDir);
  const conf = join(root, 'imapd.conf');
  writeFileSync(conf, [`configdirectory: ${configDirectory}`, 'sync_log: 1', ...extraConf, ''].join('\n'));
  return { root, conf, configDirectory, syncDir, cleanup: () => rmSync(root, { recursive: true, force: true }) };
}

/**
 * A live process whose cmdline is `sync_client <args>` (it ignores them). It waits on a pipe from
 * us rather than on a child `sleep`, so killing it leaves nothing behind, and it exits by itself
 * if the test process dies (the pipe closes).
 */
export async function fakeSyncClient(args: string[]): Promise<ChildProcess & { pid: number }> {
  const child = spawn('/bin/sh', ['-c', 'read x', ...args], { argv0: 'sync_client', stdio: ['pipe', 'ignore', 'ignore'] });
  if (child.pid === undefined) throw new Error('could not spawn the fake sync_client');
  const pid = child.pid;
  await waitFor(() => import('node:fs').then((fs) => fs.readFileSync(`/proc/${pid}/cmdline`, 'latin1').startsWith('sync_client')), 5_000, 'fake sync_client cmdline');
  return child as ChildProcess & { pid: number };
}

/** A live process that is not a sync_client. */
export function sleeper(): ChildProcess & { pid: number } {
  const child = spawn('sleep', ['120'], { stdio: 'ignore' });
  if (child.pid === undefined) throw new Error('could not spawn sleep');
  return child as ChildProcess & { pid: number };
}

/** A PID that belonged to a process which has exited and been reaped. */
export async function deadPid(): Promise<number> {
  const child = spawn('true', [], { stdio: 'ignore' });
  const pid = child.pid as number;
  await new Promise((r) => child.once('exit', r));
  return pid;
}

export async function stop(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
}
