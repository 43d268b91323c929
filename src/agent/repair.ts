/**
 * monitorsync's repairs, each behind its own switch:
 * - a pending file no client owns (`log-<PID>` of a dead process, `log-run` with no rolling client)
 *   → `sync_client -r -f FILE`, then the agent removes FILE (3.6.1's `-r -f` leaves it in place:
 *   seen with the harness, the file was still there after a zero exit);
 * - no rolling sync_client on a current master → start one, with a doubling backoff.
 * Only on a known current master of an active store, never two at once for one slot.
 */
import { stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { AgentConfig } from '../config/sections/agent.js';
import { AgentError } from './errors.js';
import { expandTemplate, runCommand } from './command.js';
import { scanSyncClients } from './procs.js';
import type { RepairRecord, SlotReport } from './report.js';
import { replicationRefusal, type LocalSlot, type SlotLocks, type SlotRole } from './slots.js';

export type RepairKind = 'replay-orphan-file' | 'start-rolling-client';

export interface PlannedRepair {
  kind: RepairKind;
  /** For replay-orphan-file: the file's name in the sync directory. */
  file?: string;
}

/** What should be done for one slot now (pure). `notBefore`: backoff per kind (epoch ms). */
export function planRepairs(report: SlotReport, role: SlotRole, settings: AgentConfig['repairs'],
  notBefore: ReadonlyMap<RepairKind, number>, now: number): PlannedRepair[] {
  if (report.status !== 'ok' && report.status !== 'no-sync-dir') return [];
  if (replicationRefusal(report.slot, role) !== null) return [];
  const ready = (kind: RepairKind) => (notBefore.get(kind) ?? 0) <= now;
  const plan: PlannedRepair[] = [];
  if (settings.orphanFiles && ready('replay-orphan-file')) {
    for (const f of report.files) if (f.orphan) plan.push({ kind: 'replay-orphan-file', file: f.name });
  }
  if (settings.startRollingClient && ready('start-rolling-client') && !report.rollingClient.running) {
    plan.push({ kind: 'start-rolling-client' });
  }
  return plan;
}

/** What one step ran (empty argv: nothing needed running after all) and what came of it. */
export interface StepOutcome {
  argv: string[];
  detail: string;
}

export interface RepairContext {
  config: AgentConfig;
  logger: Logger;
  locks: SlotLocks;
  procRoot?: string;
}

/**
 * Replays one pending file through the configured command and removes it after a zero exit, if
 * it is still the same file (same inode) and no rolling client has since taken it over (a client
 * that starts finds `log-run` and replays it itself: "Reprocessing sync log file").
 */
export async function replayFile(ctx: RepairContext, slot: LocalSlot, role: SlotRole, name: string, deadlineMs: number): Promise<StepOutcome> {
  const path = join(slot.syncDir, name);
  const before = await stat(path).catch(() => null);
  if (!before) return { argv: [], detail: `${name} was consumed meanwhile` };
  const argv = expandTemplate(ctx.config.commands.replayFile, {
    conf: slot.imapdConf, slot: slot.name, peer: role.peer ?? undefined, file: path, channel: slot.channel,
  });
  await runCommand(argv, deadlineMs);
  const procs = await scanSyncClients(ctx.procRoot);
  const clientTookOver = name === 'log-run'
    && procs.some((p) => p.rolling && p.conf === slot.confReal && p.channel === slot.channel);
  const after = await stat(path).catch(() => null);
  if (clientTookOver || !after || after.ino !== before.ino) return { argv, detail: `replayed ${name}; left it to the rolling client` };
  await unlink(path).catch(() => undefined);
  return { argv, detail: `replayed and removed ${name} (${before.size} bytes)` };
}

export async function startRollingClient(ctx: RepairContext, slot: LocalSlot, role: SlotRole, deadlineMs: number): Promise<StepOutcome> {
  const argv = expandTemplate(ctx.config.commands.startRollingClient, {
    conf: slot.imapdConf, slot: slot.name, peer: role.peer ?? undefined, channel: slot.channel,
  });
  // Checked again right before starting: the master's DAEMON section or an operator may have
  // started one since the round's scan, and two rolling clients would race on one log.
  const procs = await scanSyncClients(ctx.procRoot);
  if (procs.some((p) => p.rolling && p.conf === slot.confReal && p.channel === slot.channel)) {
    return { argv: [], detail: 'a rolling sync_client appeared meanwhile' };
  }
  await runCommand(argv, deadlineMs);
  return { argv, detail: 'started a rolling sync_client' };
}

/** Runs the repairs a round calls for, one slot at a time, and remembers backoff. One per agent. */
export class Repairer {
  readonly #ctx: RepairContext;
  readonly #failures = new Map<string, number>();
  readonly #notBefore = new Map<string, Map<RepairKind, number>>();
  readonly #last = new Map<string, RepairRecord>();

  constructor(ctx: RepairContext) {
    this.#ctx = ctx;
  }

  lastRecord(slot: string): RepairRecord | undefined {
    return this.#last.get(slot);
  }

  /** Plans and runs what `report` calls for; resolves with what was done (empty: nothing). */
  async repair(slot: LocalSlot, report: SlotReport, role: SlotRole, now = Date.now()): Promise<RepairRecord[]> {
    const notBefore = this.#notBefore.get(slot.name) ?? new Map<RepairKind, number>();
    if (report.rollingClient.running) this.#reset(slot.name, 'start-rolling-client');
    const plan = planRepairs(report, role, this.#ctx.config.repairs, notBefore, now);
    if (plan.length === 0) return [];
    const lock = this.#ctx.locks.acquire(slot.name, 'repair');
    if ('heldBy' in lock) return [];
    const records: RepairRecord[] = [];
    try {
      for (const step of plan) records.push(await this.#run(slot, role, step));
    } finally {
      lock.release();
    }
    return records;
  }

  async #run(slot: LocalSlot, role: SlotRole, step: PlannedRepair): Promise<RepairRecord> {
    const startedAt = Date.now();
    const timeout = this.#ctx.config.repairs.timeoutMs;
    let record: RepairRecord;
    try {
      const { argv, detail } = step.kind === 'replay-orphan-file'
        ? await replayFile(this.#ctx, slot, role, step.file as string, timeout)
        : await startRollingClient(this.#ctx, slot, role, timeout);
      record = {
        kind: step.kind, slot: slot.name, result: argv.length ? 'ok' : 'skipped', startedAt, durationMs: Date.now() - startedAt,
        commands: argv.length ? [argv] : [], ...(step.file ? { files: [step.file] } : {}), detail,
      };
      if (step.kind === 'replay-orphan-file') this.#reset(slot.name, step.kind);
      // A start that exits 0 proves little (sync_client -r daemonizes): back off until a later
      // round sees the client running, which resets the backoff.
      if (step.kind === 'start-rolling-client' && argv.length) this.#backOff(slot.name, step.kind);
    } catch (err) {
      const e = err instanceof AgentError ? err : new AgentError('COMMAND_FAILED', (err as Error).message, {}, { cause: err });
      this.#backOff(slot.name, step.kind);
      const argv = Array.isArray(e.facts.argv) ? [e.facts.argv as string[]] : [];
      record = {
        kind: step.kind, slot: slot.name, result: e.code === 'COMMAND_TIMEOUT' ? 'timeout' : 'failed', startedAt,
        durationMs: Date.now() - startedAt, commands: argv, ...(step.file ? { files: [step.file] } : {}), detail: `${e.code}: ${e.message}`,
      };
    }
    this.#last.set(slot.name, record);
    const level = record.result === 'ok' ? 'info' : 'warn';
    this.#ctx.logger[level]({ slot: slot.name, kind: record.kind, result: record.result, detail: record.detail }, 'agent_repair');
    return record;
  }

  #backOff(slot: string, kind: RepairKind): void {
    const key = `${slot}\0${kind}`;
    const failures = (this.#failures.get(key) ?? 0) + 1;
    this.#failures.set(key, failures);
    const { backoffMs, backoffMaxMs } = this.#ctx.config.repairs;
    const wait = Math.min(backoffMaxMs, backoffMs * 2 ** (failures - 1));
    const map = this.#notBefore.get(slot) ?? new Map<RepairKind, number>();
    map.set(kind, Date.now() + wait);
    this.#notBefore.set(slot, map);
  }

  #reset(slot: string, kind: RepairKind): void {
    this.#failures.delete(`${slot}\0${kind}`);
    this.#notBefore.get(slot)?.delete(kind);
  }
}
