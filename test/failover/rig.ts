/**
 * Real parts for the failover runner's tests: an embedded directory in a temporary folder (store A
 * on slots s1@m1 and s2@m2, s1 master) and one real agent per machine over made-up sync dirs,
 * publishing into that directory every 200 ms as `storeroute agent` does.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startAgent, type Agent } from '../../src/agent/index.js';
import { parseConfig, type Config } from '../../src/config/index.js';
import { EmbeddedDirectory, type Directory } from '../../src/directory/index.js';
import { failoverStore, fileLeases, type FailoverStoreOptions, type PhaseEvent, type ReplayFound } from '../../src/failover/index.js';
import { testLogger, testRegistry } from '../helpers/logger.js';
import { makeSlot, type TmpSlot } from '../agent/helpers.js';

export const TOKEN = 'failover-test-token-0123456789';

export interface Rig {
  root: string;
  directory: Directory;
  config: Config;
  agents: Map<string, Agent>;
  slots: Map<string, TmpSlot>;
  /** Where the fake sync_client appends what it "replicated". */
  replicaLog: string;
  run(over?: Partial<FailoverStoreOptions>): Promise<{ result: Awaited<ReturnType<typeof failoverStore>>; events: PhaseEvent[] }>;
  close(): Promise<void>;
}

export interface RigOptions {
  /** replayFile argv for the old master's agent (default: append the file to replicaLog). */
  replayFile?: string[];
  /** Which machines run an agent (default both). */
  machines?: string[];
  failover?: Record<string, unknown>;
  /** Slots (name → machine) and stores; default store A on s1@m1 (master) and s2@m2. */
  layout?: { slots: Record<string, string>; stores: Array<{ name: string; slots: string[]; preferredMaster: string }> };
}

const DEFAULT_LAYOUT: NonNullable<RigOptions['layout']> = {
  slots: { s1: 'm1', s2: 'm2' },
  stores: [{ name: 'A', slots: ['s1', 's2'], preferredMaster: 's1' }],
};

export async function makeRig(opts: RigOptions = {}): Promise<Rig> {
  const root = mkdtempSync(join(tmpdir(), 'storeroute-failover-'));
  const replicaLog = join(root, 'replica.log');
  const obs = { logger: testLogger(), metrics: testRegistry() };
  const directory = await EmbeddedDirectory.open({ file: join(root, 'directory.json'), historyLimit: 1000 }, obs);
  const layout = opts.layout ?? DEFAULT_LAYOUT;
  const slotNames = Object.keys(layout.slots);
  for (const [i, name] of slotNames.entries()) await directory.createSlot({ name, machine: layout.slots[name]!, ip: `127.0.0.${11 + i}` }, 'test');
  for (const store of layout.stores) await directory.createStore(store, 'test');
  // A user per store: the hold asks proxies about a user's route (a store without users skips it).
  for (const store of layout.stores) await directory.createUser({ name: `user-${store.name.toLowerCase()}`, store: store.name }, 'test');
  const slots = new Map(slotNames.map((n) => [n, makeSlot()]));
  const base = {
    intervalMs: 200, listen: { port: 0 }, token: TOKEN, repairs: { startRollingClient: false, orphanFiles: false },
    commands: { replayFile: opts.replayFile ?? ['/bin/sh', '-c', 'cat "$1" >> "$2"', 'sh', '{file}', replicaLog] },
  };
  const config = parseConfig({
    agent: { ...base, machine: 'm1', slots: [{ name: slotNames[0]!, imapdConf: slots.get(slotNames[0]!)!.conf }] },
    failover: { holdMs: 50, drainTimeoutMs: 5_000, pollMs: 50, ...opts.failover },
  });
  const agents = new Map<string, Agent>();
  for (const machine of [...new Set(Object.values(layout.slots))].sort()) {
    if (opts.machines && !opts.machines.includes(machine)) continue;
    const mine = slotNames.filter((n) => layout.slots[n] === machine).map((n) => ({ name: n, imapdConf: slots.get(n)!.conf }));
    const agentConfig = parseConfig({ agent: { ...base, machine, slots: mine } }).agent;
    agents.set(machine, await startAgent({
      config: agentConfig, obs: { logger: obs.logger, metrics: testRegistry() }, layout: () => directory.snapshot(),
      publish: (r) => directory.publishStatus('agent', machine, r),
    }));
  }
  const leases = fileLeases(root);
  return {
    root, directory, config, agents, slots, replicaLog,
    async run(over = {}) {
      const events: PhaseEvent[] = [];
      const result = await failoverStore({
        directory, store: 'A', settings: config.failover, agent: config.agent, agentToken: TOKEN, leases, actor: 'test:failover',
        replay: async (): Promise<ReplayFound> => ({ selected: 0, delivered: 0, alreadyPresent: 0, failed: 0, refused: 0 }),
        ...over, onEvent: (e) => { events.push(e); over.onEvent?.(e); },
      });
      return { result, events };
    },
    async close() {
      for (const a of agents.values()) await a.close();
      await directory.close();
      for (const s of slots.values()) s.cleanup();
      rmSync(root, { recursive: true, force: true });
    },
  };
}

/** Pending replication on `slot`: a sync log with records for alice. */
export function pend(rig: Rig, slot: string): void {
  writeFileSync(join(rig.slots.get(slot)!.syncDir, 'log'), 'APPEND user.alice\nMAILBOX user.alice\n');
}

export const phases = (events: PhaseEvent[]) => events.filter((e) => e.status !== 'start').map((e) => `${e.phase}:${e.status}`);

/** A config file for the CLI over the rig's embedded directory (the agents publish into it). */
export function configFileFor(r: Rig, failover = 'holdMs: 50'): string {
  const file = join(r.root, 'storeroute.yaml');
  writeFileSync(file, [
    'log: { level: silent }',
    'directory: { backend: embedded, embedded: { file: directory.json } }',
    'journal: { dir: journal }',
    `agent: { intervalMs: 200, token: ${TOKEN} }`,
    `failover: { ${failover} }`, '',
  ].join('\n'));
  return file;
}
