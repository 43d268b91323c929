/**
 * `storeroute agent`: the slot agent, one per IMAP machine, running until SIGTERM or SIGINT like
 * `serve`. Before anything starts it checks its place in the directory: every slot in agent.slots
 * must exist there and sit on agent.machine. Otherwise it names every slot that does not and exits
 * 2: a config copied from another machine, or a slot moved in the directory, is found at start,
 * not by a repair acting on the wrong machine's slots.
 *
 * The wiring (the agent itself knows nothing of the directory):
 * - each round's report is published as directory status `agent`/<machine>, which `status` and
 *   `store show` read;
 * - the slots' roles come from the directory's topology (slots and stores, not the users: read
 *   every round);
 * - every repair and operation is recorded in the audit history as an event by agent:<machine>.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import type { Command } from 'commander';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { AgentError, startAgent, type Agent, type RepairRecord } from '../agent/index.js';
import type { Config } from '../config/index.js';
import type { Observability } from '../core/deps.js';
import { createLogger } from '../core/logger.js';
import { createDirectory, type AuditEvent, type Directory, type Topology } from '../directory/index.js';
import { actorOf, DirectoryMissingError, loadCliConfig, withDirectory, type GlobalOptions } from './context.js';
import { UsageError, type CliIo } from './io.js';

/**
 * Node options the agent is run with: the README's systemd unit puts them on its ExecStart line,
 * and bench/agent.ts runs the agent with them. V8 sizes its heap when the process starts, so they
 * cannot be set from inside. Measured with bench/agent.ts (64 slots), peak RSS: 105.6 MB without
 * them; 90.2 MB with --max-semi-space-size=1 (the young generation's two 16 MB semi-spaces, sized
 * for a server's allocation rate, as 1 MB ones: a round allocates ~1-3 MB and keeps almost none
 * of it); 77.2 MB adding --single-threaded (no V8 worker threads, whose malloc arenas and
 * compiler zones stayed resident; the agent's collections are small, it has no use for
 * concurrent marking). CPU per round was the same within the noise of a shared 2-core machine.
 * --lite-mode would save 10 MB more but cost 2.3× the CPU per round (no optimising compiler).
 */
export const AGENT_NODE_OPTIONS: readonly string[] = ['--max-semi-space-size=1', '--single-threaded'];

/** Every configured slot the directory does not know, or places on another machine. */
export function placementProblems(topology: Topology, machine: string, slots: readonly string[]): string[] {
  const problems: string[] = [];
  for (const name of slots) {
    const entry = topology.slots[name];
    if (!entry) problems.push(`slot ${name} (agent.slots) is not in the directory`);
    else if (entry.machine !== machine) {
      problems.push(`slot ${name} is on machine ${entry.machine} in the directory, but this agent is ${machine} (agent.machine)`);
    }
  }
  return problems;
}

/** A repair or operation as an audit event. */
export function auditEventOf(machine: string, r: RepairRecord): AuditEvent {
  return {
    actor: `agent:${machine}`,
    action: r.kind,
    target: r.slot ? `slot:${r.slot}` : `machine:${machine}`,
    detail: {
      result: r.result, detail: r.detail, startedAt: r.startedAt, durationMs: r.durationMs, commands: r.commands,
      ...(r.files ? { files: r.files } : {}),
    },
  };
}

/** Refuses what cannot work before opening anything (exit 2, every problem at once). */
function checkAgentConfig(config: Config): string {
  const problems: string[] = [];
  const machine = config.agent.machine;
  if (!machine) problems.push('agent.machine is not set: the agent must know which machine it runs on (its name in the directory)');
  if (config.agent.slots.length === 0) problems.push('agent.slots is empty: list this machine\'s slots, each with its imapd.conf');
  if (problems.length > 0) throw new UsageError(`cannot start the agent:\n  ${problems.join('\n  ')}`);
  const embedded = config.directory.embedded;
  if (config.directory.backend === 'embedded' && !embedded.seed && !existsSync(embedded.file)) {
    throw new DirectoryMissingError(resolve(embedded.file));
  }
  return machine as string;
}

async function start(config: Config, machine: string, directory: Directory, obs: Observability): Promise<Agent> {
  const problems = placementProblems(await directory.topology(), machine, config.agent.slots.map((s) => s.name));
  if (problems.length > 0) throw new UsageError(`cannot start the agent on machine ${machine}:\n  ${problems.join('\n  ')}`);
  try {
    return await startAgent({
      config: config.agent, obs,
      publish: (report) => directory.publishStatus('agent', machine, report),
      layout: () => directory.topology(),
      audit: async (record) => { await directory.recordEvent(auditEventOf(machine, record)); },
    });
  } catch (err) {
    // Everything the agent refuses at start is about its config or this machine (an imapd.conf, a slot).
    if (err instanceof AgentError) throw new UsageError(`cannot start the agent: ${err.message}`);
    throw err;
  }
}

/**
 * The registry `serve` builds (main.ts createMetrics), with the event-loop lag sampled every
 * second instead of prom-client's 10 ms: that timer alone cost 5-7 ms of CPU per second on an
 * idle process, more than the agent's own measuring (its budget, issue #13, is about what a bare
 * `du -s` of the sync directories costs per round; bench/agent.ts).
 */
function agentRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'storeroute_', eventLoopMonitoringPrecision: 1_000 });
  return registry;
}

/** Resolves once a signal has stopped `stop`; a second signal exits at once. */
function untilSignalled(stop: () => Promise<void>, logger: Logger): Promise<void> {
  return new Promise((resolveStop, rejectStop) => {
    let stopping = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (stopping) {
        logger.warn({ signal }, 'agent_forced_exit');
        process.exit(1);
      }
      stopping = true;
      logger.info({ signal }, 'agent_stopping');
      stop().then(() => { done(); logger.info('agent_stopped'); resolveStop(); },
        (err: unknown) => { done(); logger.error({ err }, 'agent_stop_failed'); rejectStop(err); });
    };
    const crashed = (what: string) => (err: unknown) => { logger.fatal({ err }, what); process.exit(70); };
    const uncaught = crashed('uncaught_exception');
    const unhandled = crashed('unhandled_rejection');
    const done = () => {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      process.off('uncaughtException', uncaught);
      process.off('unhandledRejection', unhandled);
      // Whatever still holds the event loop (a repair's child past its grace) must not keep a
      // stopped agent alive: exit soon unless the process ends by itself first.
      setTimeout(() => process.exit(process.exitCode ?? 0), 2_000).unref();
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    // State we cannot reason about: exit and let the supervisor restart the agent.
    process.on('uncaughtException', uncaught);
    process.on('unhandledRejection', unhandled);
  });
}

/**
 * Runs the agent until a signal stops it: `storeroute agent`, and the lean entry operators run
 * (agent-main.ts), which reaches it without loading the rest of the command line.
 */
export async function runAgent(globals: GlobalOptions, io: CliIo): Promise<void> {
  const config = loadCliConfig(globals, io.env);
  const machine = checkAgentConfig(config);
  // core/logger.ts, not main.ts: importing main.ts would load the whole proxy, code the agent never runs.
  const logger = createLogger(config.log);
  const obs: Observability = { logger, metrics: agentRegistry() };
  // No read cache: the agent never resolves a user, and reads its topology fresh every round.
  const directory = await createDirectory({ ...config.directory, cache: { ...config.directory.cache, enabled: false } }, obs);
  let agent: Agent;
  try {
    agent = await start(config, machine, directory, obs);
  } catch (err) {
    logger.fatal({ err }, 'agent_start_failed');
    await directory.close();
    throw err; // the CLI prints it: exit 2 for config and placement, 75 when the directory is unreachable
  }
  await untilSignalled(async () => {
    await agent.close();
    await directory.close();
  }, logger);
}

export function registerAgent(program: Command, io: CliIo): void {
  const agent = program
    .command('agent')
    .description('run the slot agent on this IMAP machine: measure sync logs, repair replication, run slot operations')
    .action((_opts: unknown, cmd: Command) => runAgent(cmd.optsWithGlobals<GlobalOptions>(), io));
  agent.command('forget')
    .description('remove a decommissioned machine\'s last agent report (status lists it as stale otherwise)')
    .argument('<machine>', 'machine name, as its agent reported it')
    .option('--force', 'even though the directory still has slots on the machine, or its report is fresh')
    .action(async (machine: string, flags: { force?: boolean }, cmd: Command) => {
      // Loaded on use: this file is also the lean agent entry's, which never forgets anything.
      const { forgetAgent } = await import('./agent-forget.js');
      const globals = cmd.optsWithGlobals<GlobalOptions>();
      await withDirectory(globals, (directory, config) => forgetAgent(io, directory, config, machine,
        { force: flags.force === true, actor: actorOf(globals, io.env) }), io.env);
    });
}
