/**
 * The slot agent as an operator runs it, one per IMAP machine: the README's systemd line (the
 * built `agent-main.js` under AGENT_NODE_OPTIONS; `index.js agent` for a build without it) as a child
 * process (`--config <file>`) with its own config file naming the machine, its
 * slots' imapd.conf and the stack's directory. The agent runs as root here, like the harness;
 * every Cyrus command it runs goes through `runuser -u cyrus` so Cyrus's files stay the cyrus
 * user's.
 *
 * Rolling clients the agent starts daemonize and live on under PID 1, outside every process group
 * the harness knows: `killSyncClientsUnder` finds them by their -C path, for teardown.
 */
import { existsSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { stringify } from 'yaml';
import { spawnDaemon, tail, type Daemon } from './proc.js';
import { CLI } from './storeroute.js';
import { AGENT_NODE_OPTIONS } from '../../../src/cli/agent.js';
import type { CyrusSlot } from './cyrus.js';
import { freePort, waitFor } from '../../helpers/ports.js';
import { scanSyncClients, type SyncClientProcess } from '../../../src/agent/procs.js';

const AGENT_MAIN = join(dirname(CLI), 'agent-main.js');
const AGENT_ARGV = existsSync(AGENT_MAIN) ? [...AGENT_NODE_OPTIONS, AGENT_MAIN] : [CLI, 'agent'];

const BIN = '/usr/lib/cyrus/bin';
const AS_CYRUS = ['runuser', '-u', 'cyrus', '--'];

export interface AgentProcessOptions {
  machine: string;
  slots: CyrusSlot[];
  /** Where its config and log go. */
  dir: string;
  /** The config's `directory` section (the stack's: `stack.storeroute.directoryConfig`). */
  directory: unknown;
  intervalMs: number;
  token: string;
  /** Merged over the defaults below (short deadlines and backoff for a test). */
  repairs?: Record<string, unknown>;
}

export class AgentProcess {
  readonly machine: string;
  readonly configFile: string;
  readonly logFile: string;
  port = 0;
  readonly #opts: AgentProcessOptions;
  #daemon: Daemon | null = null;

  constructor(opts: AgentProcessOptions) {
    this.#opts = opts;
    this.machine = opts.machine;
    this.configFile = join(opts.dir, `agent-${opts.machine}.yaml`);
    this.logFile = join(opts.dir, `agent-${opts.machine}.log`);
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.#daemon !== null && !this.#daemon.dead;
  }

  async writeConfig(): Promise<void> {
    const o = this.#opts;
    mkdirSync(o.dir, { recursive: true });
    this.port ||= await freePort();
    writeFileSync(this.configFile, stringify({
      log: { level: 'info' },
      directory: o.directory,
      agent: {
        machine: o.machine, intervalMs: o.intervalMs, token: o.token,
        listen: { host: '127.0.0.1', port: this.port },
        slots: o.slots.map((s) => ({ name: s.name, imapdConf: s.confFile })),
        repairs: { timeoutMs: 5_000, backoffMs: 1_000, backoffMaxMs: 4_000, ...o.repairs },
        commands: {
          replayFile: [...AS_CYRUS, `${BIN}/sync_client`, '-C', '{conf}', '-S', '{peer}', '{channelArgs}', '-r', '-f', '{file}'],
          // -d 1 as the harness runs it: a test waits seconds, not the default 3 s per pass.
          startRollingClient: [...AS_CYRUS, `${BIN}/sync_client`, '-C', '{conf}', '-S', '{peer}', '{channelArgs}', '-r', '-d', '1'],
          queueUser: [...AS_CYRUS, `${BIN}/cyr_synclog`, '-C', '{conf}', '-u', '{user}'],
          syncUser: [...AS_CYRUS, `${BIN}/sync_client`, '-C', '{conf}', '-S', '{target}', '-u', '{user}'],
        },
      },
    }));
  }

  /** Starts the agent and resolves once its /healthz says a fresh round was measured. */
  async start(): Promise<void> {
    if (this.running) return;
    await this.writeConfig();
    const d = spawnDaemon(`agent-${this.machine}`, process.execPath, [...AGENT_ARGV, '--config', this.configFile],
      { logFile: this.logFile, cwd: this.#opts.dir });
    this.#daemon = d;
    await waitFor(async () => {
      if (d.dead) throw new Error(`storeroute agent (${this.machine}) exited: ${tail(this.logFile)}`);
      return (await fetch(`${this.url}/healthz`)).status === 200;
    }, 30_000, `storeroute agent on ${this.machine} (/healthz)`);
  }

  /** SIGTERM, as systemd stops it; resolves with its exit code (or signal). */
  async stop(): Promise<number | string | null> {
    const d = this.#daemon;
    this.#daemon = null;
    if (!d) return null;
    await d.stop(15_000);
    return d.exited;
  }

  /** The agent's /metrics text. */
  async metrics(): Promise<string> {
    const res = await fetch(`${this.url}/metrics`);
    if (res.status !== 200) throw new Error(`${this.url}/metrics answered ${res.status}`);
    return res.text();
  }

  logTail(lines = 40): string {
    return tail(this.logFile, lines);
  }
}

/** One gauge's value for one slot from a Prometheus text page (null when absent). */
export function slotGauge(metrics: string, name: string, slot: string): number | null {
  const line = metrics.split('\n').find((l) => l.startsWith(`${name}{slot="${slot}"} `));
  return line === undefined ? null : Number(line.slice(line.lastIndexOf(' ') + 1));
}

/** The sync_client processes whose -C file lies under `dir` (one suite's slots). */
export async function syncClientsUnder(dir: string): Promise<SyncClientProcess[]> {
  return (await scanSyncClients()).filter((p) => p.conf.startsWith(`${dir}/`));
}

/** SIGKILLs, by PID, every sync_client working for a slot under `dir`: those the agents started included. */
export async function killSyncClientsUnder(dir: string): Promise<void> {
  for (const p of await syncClientsUnder(dir)) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      // Exited meanwhile.
    }
  }
}
