/**
 * A machine's stores as one operation: `evacuate` fails over every store whose current master is
 * on the machine; `restore` fails back every store whose preferred master is on it and that runs
 * backwards. Planning reads the directory once and changes nothing (it is also `--dry-run`);
 * running it is `failoverStore` per store, a few at a time.
 *
 * How many at a time, by default: one per receiving machine. A store switching brings its users'
 * IMAP sessions (released from the hold all at once) and its deliveries to its new master; two
 * stores landing on one machine at the same moment double that burst, while stores landing on
 * different machines do not add up. So the default spreads the work over as many machines as
 * receive stores, never more than one at a time on each. `--parallel N` sets a plain cap instead,
 * and the queue is still interleaved by receiving machine so N running stores land on N machines
 * where the layout allows.
 */
import type { DirectorySnapshot, Slot, Store } from '../directory/index.js';
import { verdictOf, type AgentsView } from './agents.js';
import type { FailoverResult } from './events.js';

export interface PlannedMove {
  store: string;
  from: string;
  fromMachine: string;
  to: string;
  toMachine: string;
}

export interface MachinePlan {
  kind: 'evacuate' | 'restore';
  machine: string;
  moves: PlannedMove[];
  /** Stores in scope that will not move, and why (restore: not caught-up, preferred slot down …). */
  skipped: Array<{ store: string; why: string }>;
  /** Current masters per machine, before and after the plan (every machine holding a slot). */
  mastersBefore: Record<string, number>;
  mastersAfter: Record<string, number>;
}

export class PlanError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PlanError';
  }
}

function machinesOf(snap: DirectorySnapshot): Set<string> {
  return new Set(Object.values(snap.slots).map((s) => s.machine));
}

function masterCounts(snap: DirectorySnapshot, moves: PlannedMove[] = []): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const m of [...machinesOf(snap)].sort()) counts[m] = 0;
  const moved = new Map(moves.map((m) => [m.store, m.toMachine]));
  for (const store of Object.values(snap.stores)) {
    const machine = moved.get(store.name) ?? snap.slots[store.currentMaster]?.machine;
    if (machine !== undefined) counts[machine] = (counts[machine] ?? 0) + 1;
  }
  return counts;
}

function mustKnowMachine(snap: DirectorySnapshot, machine: string): void {
  if (!machinesOf(snap).has(machine)) {
    throw new PlanError(`no slot is on machine ${machine} (machines: ${[...machinesOf(snap)].sort().join(', ') || 'none'})`);
  }
}

const byName = (a: { store: string }, b: { store: string }) => a.store.localeCompare(b.store, 'en', { numeric: true });

/**
 * Every store mastered on `machine`, to its other slot that is up. Where a store has several such
 * slots, the one on the machine with the fewest masters so far, so a dead machine's masters spread.
 */
export function planEvacuate(snap: DirectorySnapshot, machine: string): MachinePlan {
  mustKnowMachine(snap, machine);
  const moves: PlannedMove[] = [];
  const skipped: MachinePlan['skipped'] = [];
  const load = masterCounts(snap);
  const stores = Object.values(snap.stores).filter((s) => snap.slots[s.currentMaster]?.machine === machine)
    .sort((a, b) => a.name.localeCompare(b.name, 'en', { numeric: true }));
  for (const store of stores) {
    const from = snap.slots[store.currentMaster] as Slot;
    const candidates = store.slots.map((n) => snap.slots[n]).filter((s): s is Slot => !!s && s.machine !== machine);
    const up = candidates.filter((s) => s.state === 'up');
    if (up.length === 0) {
      skipped.push({ store: store.name, why: candidates.length === 0 ? `no slot off ${machine}`
        : `no slot off ${machine} is up (${candidates.map((s) => `${s.name} ${s.state}`).join(', ')})` });
      continue;
    }
    const to = up.sort((a, b) => (load[a.machine] ?? 0) - (load[b.machine] ?? 0) || a.name.localeCompare(b.name))[0] as Slot;
    load[to.machine] = (load[to.machine] ?? 0) + 1;
    load[machine] = (load[machine] ?? 0) - 1;
    moves.push({ store: store.name, from: from.name, fromMachine: machine, to: to.name, toMachine: to.machine });
  }
  return { kind: 'evacuate', machine, moves, skipped, mastersBefore: masterCounts(snap), mastersAfter: masterCounts(snap, moves) };
}

/**
 * Every store whose preferred master is on `machine` and is not its current master, back to it,
 * only where the preferred slot is up, the store active and its replication `caught-up` (the
 * agents' reports as `status` judges them), or `lagging` with its rolling sync_client running
 * (see below): failing back onto a replica that is behind would hide mail until the drain ends,
 * or abort at its deadline with the store held meanwhile. Stores not moved are listed with why.
 */
export function planRestore(snap: DirectorySnapshot, machine: string, agents: AgentsView): MachinePlan {
  mustKnowMachine(snap, machine);
  const moves: PlannedMove[] = [];
  const skipped: MachinePlan['skipped'] = [];
  const stores = Object.values(snap.stores)
    .filter((s) => snap.slots[s.preferredMaster]?.machine === machine && s.currentMaster !== s.preferredMaster)
    .sort((a, b) => a.name.localeCompare(b.name, 'en', { numeric: true }));
  for (const store of stores) {
    const why = restoreRefusal(snap, store, agents);
    if (why) {
      skipped.push({ store: store.name, why });
      continue;
    }
    const from = snap.slots[store.currentMaster] as Slot;
    moves.push({ store: store.name, from: from.name, fromMachine: from.machine, to: store.preferredMaster, toMachine: machine });
  }
  return { kind: 'restore', machine, moves, skipped, mastersBefore: masterCounts(snap), mastersAfter: masterCounts(snap, moves) };
}

function restoreRefusal(snap: DirectorySnapshot, store: Store, agents: AgentsView): string | null {
  const preferred = snap.slots[store.preferredMaster];
  if (!preferred) return `preferred master ${store.preferredMaster} is not a known slot`;
  if (preferred.state !== 'up') return `preferred master ${preferred.name} is ${preferred.state}`;
  if (!snap.slots[store.currentMaster]) return `current master ${store.currentMaster} is not a known slot`;
  if (store.state !== 'active') return `store is ${store.state}`;
  const v = verdictOf(agents, store);
  if (v.state === 'caught-up') return null;
  // Under live mail a store is never caught-up at an instant: a little pending with the rolling
  // client running is replication keeping up, and the failover's drain empties it during the hold.
  if (v.state === 'lagging' && agents.reports.get(store.currentMaster)?.rollingClient.running === true) return null;
  return `replication ${v.state} on ${store.currentMaster}`
    + (v.master.reasons.length ? `: ${v.master.reasons.join('; ')}` : v.master.pendingBytes ? ` (${v.master.pendingBytes} bytes pending)` : '');
}

/** The order and concurrency a plan runs in: interleaved by receiving machine (see the file comment). */
export function scheduleOf(plan: MachinePlan, parallel?: number): { queue: PlannedMove[]; parallel: number; perMachine: number | null } {
  const groups = new Map<string, PlannedMove[]>();
  for (const m of [...plan.moves].sort(byName)) groups.set(m.toMachine, [...(groups.get(m.toMachine) ?? []), m]);
  const queue: PlannedMove[] = [];
  const lists = [...groups.keys()].sort().map((k) => groups.get(k) as PlannedMove[]);
  for (let i = 0; queue.length < plan.moves.length; i++) for (const l of lists) if (l[i]) queue.push(l[i] as PlannedMove);
  if (parallel !== undefined) return { queue, parallel, perMachine: null };
  return { queue, parallel: Math.max(1, groups.size), perMachine: 1 };
}

export interface MachineProgress {
  done: number;
  running: string[];
  failed: number;
  total: number;
  elapsedMs: number;
}

/**
 * Runs the plan's moves, at most `parallel` at once and, by default, one per receiving machine.
 * Each store's failover is independent (its own lease, its own rollback): one failing does not
 * stop the others, and the results come back in plan order. A signal stops starting new ones;
 * the running ones get it too and roll back between their phases.
 */
export async function runPlan(plan: MachinePlan, o: {
  parallel?: number;
  failover: (move: PlannedMove) => Promise<FailoverResult>;
  onProgress?: (p: MachineProgress, finished?: FailoverResult) => void;
  signal?: AbortSignal;
}): Promise<{ results: FailoverResult[]; notStarted: PlannedMove[]; ms: number }> {
  const started = Date.now();
  const { queue, parallel, perMachine } = scheduleOf(plan, o.parallel);
  const results = new Map<string, FailoverResult>();
  const running = new Map<string, PlannedMove>();
  let failed = 0;
  const progress = (finished?: FailoverResult) => {
    try {
      o.onProgress?.({ done: results.size, running: [...running.keys()], failed, total: plan.moves.length, elapsedMs: Date.now() - started }, finished);
    } catch {
      // A display that failed (stdout gone) must not stop the failovers or the scheduling.
    }
  };

  await new Promise<void>((resolveAll) => {
    const pump = () => {
      while (!o.signal?.aborted && running.size < parallel) {
        const busy = new Set([...running.values()].map((m) => m.toMachine));
        const i = queue.findIndex((m) => perMachine === null || !busy.has(m.toMachine));
        if (i === -1) break;
        const [move] = queue.splice(i, 1) as [PlannedMove];
        running.set(move.store, move);
        progress();
        void o.failover(move).catch((err: unknown): FailoverResult => ({
          outcome: 'aborted', store: move.store, from: move.from, to: move.to, epoch: null,
          detail: `unexpected: ${(err as Error).message}`, ms: 0,
        })).then((got) => {
          // A run refused in preflight names no slots; the plan does.
          const r = { ...got, from: got.from ?? move.from, to: got.to ?? move.to };
          running.delete(move.store);
          results.set(move.store, r);
          if (r.outcome !== 'done') failed++;
          progress(r);
          pump();
        });
      }
      if (running.size === 0 && (queue.length === 0 || o.signal?.aborted)) resolveAll();
    };
    pump();
  });
  const ordered = plan.moves.filter((m) => results.has(m.store)).map((m) => results.get(m.store) as FailoverResult);
  return { results: ordered, notStarted: queue, ms: Date.now() - started };
}
