/**
 * Replication as the slot agents last reported it (read by `status`, `store show`, `check` and the
 * failover runner, so that all of them validate a report the same way before trusting it) (directory status `agent`, one report per
 * machine), judged by the agent's own classification (agent/state.ts), so `status`, `store show`
 * and the failover runner mean the same thing by `caught-up`.
 *
 * Silence is never good news: a store whose current master no agent reports on, whose report is
 * malformed, or whose report is older than staleAfterIntervals × intervalMs is `unknown`. The
 * interval is the larger of this config's `agent.intervalMs` and the one the reporting agent says
 * it measures at: an agent configured to report every minute is not unknown between its rounds.
 */
import type { Config } from '../config/index.js';
import type { Directory, DirectorySnapshot, Store } from '../directory/index.js';
import { REPORT_VERSION, type SlotReport } from './report.js';
import { bySeverity, classifySlot, classifyStore, splitBrainOf, thresholdsOf, type ReplicationState, type StoreVerdict, type Thresholds } from './state.js';

/** One machine's agent as its last report shows it. */
export interface AgentSeen {
  machine: string;
  /** Where its operations are asked for (the report's `url`), null if it publishes none. */
  url: string | null;
  measuredAt: number | null;
  ageMs: number | null;
  stale: boolean;
  slots: string[];
  /** Why the report (or some of its slots) could not be used. */
  problem?: string;
}

export interface ReportedSlot extends SlotReport {
  machine: string;
  intervalMs: number;
}

export interface ReplicationView {
  now: number;
  agents: AgentSeen[];
  /** Set when the status could not be read at all: every store is unknown, saying why. */
  unreadable?: string;
  /** The newest report of each slot, whichever machine sent it. */
  reports: Map<string, ReportedSlot>;
  config: Config['agent'];
}

export type StoreReplication = StoreVerdict & { reportAgeMs: number | null };

export interface SlotSync {
  slot: string;
  machine: string | null;
  role: 'master' | 'replica';
  /** The master: its store's state. A replica: `empty` (as it should be), `split-brain` or `unknown`. */
  sync: ReplicationState | 'empty' | 'split-brain';
  pendingBytes: number | null;
  oldestPendingAgeMs: number | null;
  rollingClient: boolean | null;
  reportAgeMs: number | null;
  users: string[];
  reasons: string[];
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/** The fields classification reads, with the types it needs: anything else is no evidence. */
function usableSlot(v: unknown): v is SlotReport {
  if (!isObject(v)) return false;
  return typeof v.slot === 'string' && isNumber(v.measuredAt) && isNumber(v.pendingBytes) && typeof v.status === 'string'
    && (v.oldestPendingAgeMs === null || isNumber(v.oldestPendingAgeMs)) && Array.isArray(v.files) && v.files.every(isObject)
    && isObject(v.rollingClient) && typeof v.rollingClient.running === 'boolean'
    && Array.isArray(v.users) && v.users.every((u) => typeof u === 'string') && typeof v.usersTruncated === 'boolean';
}

function collect(view: ReplicationView, machine: string, doc: unknown): void {
  const seen: AgentSeen = { machine, url: null, measuredAt: null, ageMs: null, stale: true, slots: [] };
  view.agents.push(seen);
  if (!isObject(doc) || doc.version !== REPORT_VERSION || !isNumber(doc.measuredAt) || !isNumber(doc.intervalMs)
    || !Array.isArray(doc.slots)) {
    seen.problem = isObject(doc) && doc.version !== REPORT_VERSION
      ? `report version ${JSON.stringify(doc.version)} is not understood (expected ${REPORT_VERSION})` : 'malformed report';
    return;
  }
  const intervalMs = Math.max(view.config.intervalMs, doc.intervalMs);
  if (typeof doc.url === 'string') seen.url = doc.url;
  seen.measuredAt = doc.measuredAt;
  seen.ageMs = view.now - doc.measuredAt;
  seen.stale = seen.ageMs > view.config.staleAfterIntervals * intervalMs;
  let bad = 0;
  for (const slot of doc.slots) {
    if (!usableSlot(slot)) {
      bad++;
      continue;
    }
    seen.slots.push(slot.slot);
    const known = view.reports.get(slot.slot);
    // A slot moved between machines may still have the old machine's last report: the newest wins.
    if (!known || known.measuredAt < slot.measuredAt) view.reports.set(slot.slot, { ...slot, machine, intervalMs });
  }
  if (bad > 0) seen.problem = `${bad} malformed slot report(s) left out`;
}

/** Reads every agent report. A status that cannot be read makes every store unknown, not an error. */
export async function readReplication(dir: Directory, config: Config['agent'], now = Date.now()): Promise<ReplicationView> {
  const view: ReplicationView = { now, agents: [], reports: new Map(), config };
  let docs: Record<string, unknown>;
  try {
    docs = await dir.readStatus('agent');
  } catch (err) {
    view.unreadable = `agent status could not be read: ${(err as Error).message}`;
    return view;
  }
  for (const [machine, doc] of Object.entries(docs).sort(([a], [b]) => a.localeCompare(b))) collect(view, machine, doc);
  return view;
}

function thresholdsFor(view: ReplicationView, slots: readonly string[]): Thresholds {
  const t = thresholdsOf(view.config);
  const interval = Math.max(view.config.intervalMs, ...slots.map((s) => view.reports.get(s)?.intervalMs ?? 0));
  return { ...t, staleAfterMs: view.config.staleAfterIntervals * interval };
}

export function storeReplication(view: ReplicationView, store: Store): StoreReplication {
  const verdict = classifyStore({ store: store.name, currentMaster: store.currentMaster, slots: store.slots },
    view.reports, view.now, thresholdsFor(view, store.slots));
  if (view.unreadable) verdict.master.reasons = [view.unreadable];
  const report = view.reports.get(store.currentMaster);
  return { ...verdict, reportAgeMs: report ? view.now - report.measuredAt : null };
}

/** Every store's verdict, worst first (unknown, stalled, behind, lagging, caught-up; then by name). */
export function replicationOf(view: ReplicationView, snap: DirectorySnapshot): StoreReplication[] {
  return Object.values(snap.stores).map((s) => storeReplication(view, s)).sort(bySeverity);
}

/** Each slot of `store`: the master's sync state, and whether a replica's log is empty as it should be. */
export function slotSync(view: ReplicationView, snap: DirectorySnapshot, store: Store): SlotSync[] {
  const t = thresholdsFor(view, store.slots);
  const verdict = storeReplication(view, store);
  return store.slots.map((name) => {
    const report = view.reports.get(name);
    const base = {
      slot: name, machine: snap.slots[name]?.machine ?? null,
      pendingBytes: report?.pendingBytes ?? null, oldestPendingAgeMs: report?.oldestPendingAgeMs ?? null,
      rollingClient: report?.rollingClient.running ?? null, reportAgeMs: report ? view.now - report.measuredAt : null,
      users: report?.users ?? [],
    };
    if (name === store.currentMaster) {
      return { ...base, role: 'master', sync: verdict.state, reasons: verdict.master.reasons } satisfies SlotSync;
    }
    const own = classifySlot(name, report, view.now, t);
    if (own.state === 'unknown') return { ...base, role: 'replica', sync: 'unknown', reasons: view.unreadable ? [view.unreadable] : own.reasons } satisfies SlotSync;
    const warning = splitBrainOf(name, report, view.now, t);
    if (!warning) return { ...base, role: 'replica', sync: 'empty', reasons: [] } satisfies SlotSync;
    return { ...base, role: 'replica', sync: 'split-brain',
      reasons: [`${warning.pendingBytes} bytes pending on a slot that is not the current master: something still writes here`] } satisfies SlotSync;
  });
}
