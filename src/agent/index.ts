/**
 * The slot agent: one per IMAP machine. Every `intervalMs` it learns the slots' roles from the
 * directory (the integration's `layout`), scans the machine's sync_client processes once, reads
 * each local slot's sync log, publishes one report, and starts the repairs the readings call for
 * (in the background, one at a time per slot, never delaying the next measurement). Its HTTP
 * port serves /metrics, /healthz, and the token-protected report and operations.
 */
import type { AgentConfig } from '../config/sections/agent.js';
import type { Observability } from '../core/deps.js';
import { AgentError } from './errors.js';
import { createAgentHttp } from './http.js';
import { createAgentMetrics } from './metrics.js';
import { isOpName, runOp, type OpContext, type OpResult } from './ops.js';
import { scanSyncClients, type SyncClientProcess } from './procs.js';
import { Repairer, type RepairContext } from './repair.js';
import { REPORT_VERSION, type AgentReport, type RepairRecord, type SlotReport } from './report.js';
import { checkPlacement, loadLocalSlots, roleOf, rolesOf, SlotLocks, type AgentLayout, type LocalSlot, type SlotRole } from './slots.js';
import { readSyncDir } from './sync-log.js';
import { UserScan } from './user-scan.js';

export type { AgentReport, SlotReport, RepairRecord } from './report.js';
export { REPORT_VERSION } from './report.js';
export type { AgentLayout } from './slots.js';
export type { OpResult, OpName } from './ops.js';
export { OP_NAMES } from './ops.js';
export { requestAgentOp, type AgentClientOptions } from './client.js';
export { AgentError, type AgentErrorCode } from './errors.js';
export { classifySlot, classifyStore, splitBrainOf, bySeverity, STATE_SEVERITY, thresholdsOf } from './state.js';
import { thresholdsOf } from './state.js';
export {
  readReplication, replicationOf, slotSync, storeReplication,
  type AgentSeen, type ReplicationView, type ReportedSlot, type SlotSync, type StoreReplication,
} from './view.js';
export type { ReplicationState, Thresholds, SlotVerdict, StoreVerdict, SplitBrainWarning, StoreLayout } from './state.js';

export interface StartAgentOptions {
  /** The `agent` section of the loaded config. */
  config: AgentConfig;
  obs: Observability;
  /** Called with every round's report (the integration stores it as directory status). */
  publish: (report: AgentReport) => void | Promise<void>;
  /**
   * The directory's slots and stores (`() => directory.snapshot()` fits). Without it, or while it
   * fails, roles are unknown: the agent measures and publishes but repairs nothing.
   */
  layout?: () => Promise<AgentLayout>;
  /** Called with every repair and operation record (the integration writes the audit history). */
  audit?: (record: RepairRecord) => void | Promise<void>;
  /** Tests only: another /proc. */
  procRoot?: string;
}

export interface Agent {
  url: string;
  port: number;
  /** The last published report (null before the first round). */
  report(): AgentReport | null;
  /** Runs a measuring round now (repairs included) and resolves with its report. */
  measureNow(): Promise<AgentReport>;
  runOp(name: string, body: unknown): Promise<OpResult>;
  close(): Promise<void>;
}


export async function startAgent(opts: StartAgentOptions): Promise<Agent> {
  const { config, obs } = opts;
  const log = obs.logger.child({ component: 'agent' });
  const machine = config.machine;
  if (!machine) throw new AgentError('AGENT_CONFIG_INVALID', 'agent.machine is not set: the agent must know which machine it runs on');
  if (config.slots.length === 0) throw new AgentError('AGENT_CONFIG_INVALID', 'agent.slots is empty: nothing to watch on this machine');
  const slots = await loadLocalSlots(config);
  for (const s of slots) if (s.problem) log.warn({ slot: s.name, problem: s.problem.message }, 'agent_slot_not_logged');
  if (opts.layout) checkPlacement(await opts.layout(), machine, slots);

  const metrics = createAgentMetrics(obs.metrics);
  const locks = new SlotLocks();
  const repairCtx: RepairContext = { config, logger: log, locks, ...(opts.procRoot ? { procRoot: opts.procRoot } : {}) };
  const repairer = new Repairer(repairCtx);
  const startedAt = Date.now();
  let last: AgentReport | null = null;
  let layout: AgentLayout | null = null;
  const inFlight = new Set<Promise<unknown>>();
  /** Per slot: what earlier rounds parsed of its pending records (a round parses only what was appended). */
  const userScans = new Map(slots.map((s) => [s.name, new UserScan()]));
  let closed = false;
  let timer: NodeJS.Timeout | undefined;

  const learnLayout = async (): Promise<AgentLayout | null> => {
    if (!opts.layout) return null;
    try {
      return await opts.layout();
    } catch (err) {
      // A stale layout could name yesterday's master: better no roles (no repairs) than wrong ones.
      log.warn({ err: (err as Error).message }, 'agent_layout_unavailable');
      return null;
    }
  };

  const readSlot = async (slot: LocalSlot, procs?: SyncClientProcess[], now = Date.now(),
    role: SlotRole = roleOf(layout, slot.name)): Promise<SlotReport> => {
    const reading = await readSyncDir({
      dir: slot.syncDir, configDirectory: slot.conf.configDirectory, conf: slot.confReal, channel: slot.channel,
      procs: procs ?? await scanSyncClients(opts.procRoot), userScanBytes: config.userScanBytes, now, userScan: userScans.get(slot.name),
      ...(opts.procRoot ? { procRoot: opts.procRoot } : {}),
    });
    const lastRepair = repairer.lastRecord(slot.name);
    return {
      ...reading, slot: slot.name, imapdConf: slot.imapdConf, channel: slot.channel,
      ...(slot.problem ? { problem: slot.problem } : {}),
      role: { store: role.store, currentMaster: role.currentMaster },
      splitBrain: role.currentMaster === false && reading.pendingBytes > 0,
      ...(lastRepair ? { lastRepair } : {}),
    };
  };

  const record = async (r: RepairRecord, isOp: boolean) => {
    if (isOp) metrics.op(r.kind, r.result);
    else metrics.repair(r);
    try {
      await opts.audit?.(r);
    } catch (err) {
      log.error({ err: (err as Error).message, kind: r.kind, slot: r.slot }, 'agent_audit_failed');
    }
  };

  const track = <T>(p: Promise<T>): Promise<T> => {
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p)).catch(() => undefined);
    return p;
  };

  /** Where the control plane asks this agent for operations: published in every report. */
  let agentUrl: string | null = null;

  const round = async (): Promise<AgentReport> => {
    layout = await learnLayout();
    const procs = await scanSyncClients(opts.procRoot);
    const now = Date.now();
    const roles = rolesOf(layout, slots.map((s) => s.name));
    const reports = await Promise.all(slots.map((s) => readSlot(s, procs, now, roles.get(s.name))));
    const report: AgentReport = {
      version: REPORT_VERSION, machine, agentPid: process.pid, url: agentUrl, startedAt, intervalMs: config.intervalMs,
      measuredAt: now, slots: reports,
    };
    last = report;
    for (const r of reports) {
      metrics.observe(r);
      if (r.splitBrain) {
        log.error({ slot: r.slot, store: r.role.store, pendingBytes: r.pendingBytes, users: r.users }, 'agent_split_brain_risk');
      }
      if (r.status === 'error') log.warn({ slot: r.slot, error: r.error }, 'agent_sync_dir_unreadable');
    }
    try {
      await opts.publish(report);
    } catch (err) {
      log.error({ err: (err as Error).message }, 'agent_publish_failed');
    }
    if (!closed) {
      for (const [i, slot] of slots.entries()) {
        const r = reports[i] as SlotReport;
        track(repairer.repair(slot, r, roles.get(slot.name) as SlotRole)
          .then(async (records) => { for (const rec of records) await record(rec, false); })
          .catch((err: unknown) => log.error({ err, slot: slot.name }, 'agent_repair_crashed')));
      }
    }
    return report;
  };

  const loop = async () => {
    try {
      await track(round());
    } catch (err) {
      log.error({ err }, 'agent_round_failed');
    }
    if (!closed) timer = setTimeout(() => void loop(), config.intervalMs);
  };

  const opCtx: OpContext = { ...repairCtx, slots: new Map(slots.map((s) => [s.name, s])), layout: learnLayout, readSlot: (s) => readSlot(s) };
  const doOp = async (name: string, body: unknown): Promise<OpResult> => {
    const startedAt = Date.now();
    try {
      const result = await track(runOp(opCtx, name, body));
      await record(result.record, true);
      log.info({ op: name, slot: result.slot, durationMs: result.durationMs }, 'agent_op');
      return result;
    } catch (err) {
      const e = err as AgentError;
      const slot = typeof (body as { slot?: unknown } | null)?.slot === 'string' ? (body as { slot: string }).slot : '';
      // Refused before anything ran: counted, not audited (nothing changed).
      const ran = e.code === 'COMMAND_FAILED' || e.code === 'COMMAND_TIMEOUT';
      if (ran && isOpName(name)) {
        const argv = Array.isArray(e.facts.argv) ? [e.facts.argv as string[]] : [];
        await record({ kind: name, slot, result: e.code === 'COMMAND_TIMEOUT' ? 'timeout' : 'failed', startedAt,
          durationMs: Date.now() - startedAt, commands: argv, detail: `${e.code}: ${e.message}` }, true);
      } else {
        metrics.op(isOpName(name) ? name : 'unknown', 'refused');
      }
      log.warn({ op: isOpName(name) ? name : 'unknown', slot, code: e.code, err: e.message }, 'agent_op_failed');
      throw err;
    }
  };

  const http = createAgentHttp({
    listen: config.listen, token: config.token, obs,
    report: () => last,
    runOp: doOp,
    health: () => {
      const age = last ? Date.now() - last.measuredAt : null;
      const ok = age !== null && age <= thresholdsOf(config).staleAfterMs;
      return { ok, machine, slots: slots.map((s) => s.name), lastRoundAgeMs: age };
    },
  });
  const { port, url } = await http.listen();
  agentUrl = url;
  await loop();
  log.info({ machine, url, slots: slots.map((s) => s.name), intervalMs: config.intervalMs }, 'agent_started');

  return {
    url, port,
    report: () => last,
    measureNow: () => round(),
    runOp: doOp,
    async close() {
      closed = true;
      clearTimeout(timer);
      await http.close();
      // A repair may run for minutes (repairs.timeoutMs); an interrupted one is safe to redo (the
      // file is removed only after a zero exit), so shutdown waits a little, not for all of it.
      let grace: NodeJS.Timeout | undefined;
      await Promise.race([Promise.allSettled([...inFlight]), new Promise((r) => { grace = setTimeout(r, 10_000); })]);
      clearTimeout(grace);
      for (const scan of userScans.values()) scan.close();
    },
  };
}
