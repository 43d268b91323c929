/**
 * The agents' published reports (directory status `agent`) as the runner needs them: which
 * machine's agent is reporting, where to ask it for operations, and a store's verdict judged by
 * agent/state.ts, as `status` judges it (silence is unknown, never caught-up).
 */
import { classifyStore, REPORT_VERSION, type AgentReport, type SlotReport, type StoreVerdict } from '../agent/index.js';
import type { Config } from '../config/index.js';
import type { Directory, Store } from '../directory/index.js';

export interface MachineAgent {
  machine: string;
  url: string | null;
  measuredAt: number;
  ageMs: number;
  stale: boolean;
}

export interface AgentsView {
  now: number;
  machines: Map<string, MachineAgent>;
  /** The newest report of each slot. */
  reports: Map<string, SlotReport & { intervalMs: number }>;
}

const isReport = (v: unknown): v is AgentReport => typeof v === 'object' && v !== null
  && (v as AgentReport).version === REPORT_VERSION && typeof (v as AgentReport).measuredAt === 'number'
  && typeof (v as AgentReport).intervalMs === 'number' && Array.isArray((v as AgentReport).slots);

export async function readAgents(dir: Directory, config: Config['agent'], now = Date.now()): Promise<AgentsView> {
  const docs = await dir.readStatus('agent');
  const view: AgentsView = { now, machines: new Map(), reports: new Map() };
  for (const [machine, doc] of Object.entries(docs)) {
    if (!isReport(doc)) continue;
    const interval = Math.max(config.intervalMs, doc.intervalMs);
    view.machines.set(machine, {
      machine, url: typeof doc.url === 'string' ? doc.url : null, measuredAt: doc.measuredAt,
      ageMs: now - doc.measuredAt, stale: now - doc.measuredAt > config.staleAfterIntervals * interval,
    });
    for (const s of doc.slots) {
      if (typeof s?.slot !== 'string' || typeof s.measuredAt !== 'number') continue;
      const known = view.reports.get(s.slot);
      if (!known || known.measuredAt < s.measuredAt) view.reports.set(s.slot, { ...s, intervalMs: doc.intervalMs });
    }
  }
  return view;
}

export function verdictOf(view: AgentsView, config: Config['agent'], store: Store): StoreVerdict {
  const interval = Math.max(config.intervalMs, ...store.slots.map((s) => view.reports.get(s)?.intervalMs ?? 0));
  return classifyStore({ store: store.name, currentMaster: store.currentMaster, slots: store.slots }, view.reports, view.now,
    { ...config.thresholds, staleAfterMs: config.staleAfterIntervals * interval });
}
