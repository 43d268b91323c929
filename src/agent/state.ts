/**
 * Replication state per slot and per store, from agent reports. Pure: reports, roles, thresholds
 * and "now" in; verdicts out. Used by the agent for its own log/metrics and by the control plane
 * (status, failover), so a verdict means the same thing everywhere.
 *
 * A store's state is its current master's: the master's pending log is exactly what the replica
 * has not received. Pending records on any other slot mean something still writes there (an IMAP
 * session that outlived a failover): a split-brain warning naming the slot and users. That signal
 * is clean because a replica's sync_server does not log what it applies (seen on 3.6.1 with
 * `sync_log: 1` on both slots: the replica's log stays empty while it receives).
 */
import type { AgentConfig } from '../config/sections/agent.js';
import type { SlotReport } from './report.js';

export type ReplicationState = 'caught-up' | 'lagging' | 'behind' | 'stalled' | 'unknown';

/** For sorting status listings: the worst first. */
export const STATE_SEVERITY: Readonly<Record<ReplicationState, number>> = {
  unknown: 4, stalled: 3, behind: 2, lagging: 1, 'caught-up': 0,
};

export interface Thresholds {
  /** Pending bytes above this: behind (FastMail: 10 KB ≈ a couple of minutes of log). */
  behindBytes: number;
  /** Pending bytes above this: alert (FastMail: 100 KB ≈ 20 minutes). */
  alertBytes: number;
  /** Oldest pending record older than this: nothing is making progress → stalled. */
  stalledAfterMs: number;
  /** A report older than this is no evidence of anything → unknown. */
  staleAfterMs: number;
}

export interface SlotVerdict {
  slot: string;
  state: ReplicationState;
  alert: boolean;
  /** Why, in words an operator reads at 3 a.m. Empty for a plain caught-up. */
  reasons: string[];
  pendingBytes: number | null;
  oldestPendingAgeMs: number | null;
  users: string[];
}

export interface SplitBrainWarning {
  slot: string;
  pendingBytes: number;
  users: string[];
  usersTruncated: boolean;
}

export interface StoreVerdict {
  store: string;
  currentMaster: string;
  state: ReplicationState;
  alert: boolean;
  master: SlotVerdict;
  splitBrain: SplitBrainWarning[];
}

function unknown(slot: string, reason: string): SlotVerdict {
  return { slot, state: 'unknown', alert: false, reasons: [reason], pendingBytes: null, oldestPendingAgeMs: null, users: [] };
}

/**
 * One slot's verdict as the source of replication (its store's current master). Stale or missing
 * reports are unknown, never caught-up: silence is not evidence.
 */
export function classifySlot(slot: string, report: SlotReport | undefined, now: number, t: Thresholds): SlotVerdict {
  if (!report) return unknown(slot, 'no report from an agent for this slot');
  const age = now - report.measuredAt;
  if (age > t.staleAfterMs) return unknown(slot, `last report is ${Math.round(age / 1000)} s old (limit ${Math.round(t.staleAfterMs / 1000)} s)`);
  if (report.problem) return unknown(slot, report.problem.message);
  if (report.status === 'error') return unknown(slot, report.error?.message ?? 'the sync directory could not be read');

  const base = { slot, pendingBytes: report.pendingBytes, oldestPendingAgeMs: report.oldestPendingAgeMs, users: report.users };
  const alert = report.pendingBytes > t.alertBytes;
  if (report.pendingBytes === 0) return { ...base, state: 'caught-up', alert, reasons: [] };

  const reasons: string[] = [];
  if (!report.rollingClient.running) reasons.push('no rolling sync_client is running');
  const orphans = report.files.filter((f) => f.orphan).map((f) => f.name);
  if (orphans.length > 0) reasons.push(`pending file(s) no sync_client will pick up: ${orphans.join(', ')}`);
  const oldest = report.oldestPendingAgeMs ?? 0;
  if (oldest > t.stalledAfterMs) reasons.push(`oldest pending record is ${Math.round(oldest / 1000)} s old`);
  if (reasons.length > 0) return { ...base, state: 'stalled', alert, reasons };

  const behind = report.pendingBytes > t.behindBytes;
  return {
    ...base, state: behind ? 'behind' : 'lagging', alert,
    reasons: [`${report.pendingBytes} bytes pending${behind ? ` (behind above ${t.behindBytes})` : ''}`],
  };
}

/** Pending records on a slot that is not its store's current master (null when there are none). */
export function splitBrainOf(slot: string, report: SlotReport | undefined, now: number, t: Thresholds): SplitBrainWarning | null {
  if (!report || now - report.measuredAt > t.staleAfterMs || report.status !== 'ok' || report.pendingBytes === 0) return null;
  return { slot, pendingBytes: report.pendingBytes, users: report.users, usersTruncated: report.usersTruncated };
}

export interface StoreLayout {
  store: string;
  currentMaster: string;
  slots: readonly string[];
}

export function classifyStore(layout: StoreLayout, reports: ReadonlyMap<string, SlotReport>, now: number, t: Thresholds): StoreVerdict {
  const master = classifySlot(layout.currentMaster, reports.get(layout.currentMaster), now, t);
  const splitBrain = layout.slots
    .filter((s) => s !== layout.currentMaster)
    .map((s) => splitBrainOf(s, reports.get(s), now, t))
    .filter((w): w is SplitBrainWarning => w !== null);
  return { store: layout.store, currentMaster: layout.currentMaster, state: master.state, alert: master.alert, master, splitBrain };
}

/** Worst first, then by name: what `status` lists at the top. */
export function bySeverity(a: StoreVerdict, b: StoreVerdict): number {
  return STATE_SEVERITY[b.state] - STATE_SEVERITY[a.state] || Number(b.splitBrain.length > 0) - Number(a.splitBrain.length > 0)
    || a.store.localeCompare(b.store);
}

/** Thresholds for this file's judgements from the agent config (what `status` uses too). */
export function thresholdsOf(config: AgentConfig): Thresholds {
  return { ...config.thresholds, staleAfterMs: config.staleAfterIntervals * config.intervalMs };
}
