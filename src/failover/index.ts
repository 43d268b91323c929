/**
 * The failover capability's entry: `failoverStore` runs one store's failover as phases, each
 * recorded in the audit history with who ran it:
 *
 *   lease        one runner per store (lease.ts), taken first so that a run that waited for
 *                another reads the store as that one left it; released on exit, expiring if the runner dies.
 *   preflight    store known and active, target slot up and not the master, the target machine's
 *                agent reporting (and the old master's, to drain it), the epoch read. Refuses, changing nothing.
 *   flush        while mail still flows, the old master's agent pushes its backlog (the agent
 *                refuses operations on a store that is not active, so this comes before the hold).
 *   hold         store → failing-over (LMTP 451 4.3.0, logins wait), then until every proxy says
 *                nothing is in flight to the old master (inflight.ts), else a bounded wait
 *                (`failover.holdMs`) for deliveries already in DATA.
 *   drain        flush again, asked after the hold began: its "log empty" answer, or a report
 *                taken since the hold saying caught-up, ends the drain. Deadline → roll back.
 *   pre-switch   site hooks; a failure rolls back. Once they ran, Ctrl-C no longer stops the run:
 *                they may have stopped the old master, so the consistent way is forward.
 *   switch       the directory's compare-and-set failover on the epoch read in preflight.
 *   post-switch  site hooks; a failure keeps the switch and marks the store (status `failover`).
 *   release      store → active.
 *   verify       the journal window replayed as `storeroute replay` does (injected by the caller).
 *
 * `crash`: no drain and no pre-switch hooks; the old master's slot is marked down instead, and
 * the last replication lag its agent reported is returned beside what the replay recovered.
 *
 * machine.ts: a machine's stores as one plan (evacuate: every master on it; restore: every store
 * preferring it that runs backwards and is caught-up), run a few stores at a time.
 */
export { failoverStore, type FailoverStoreOptions } from './run.js';
export { planEvacuate, planRestore, runPlan, scheduleOf, PlanError, type MachinePlan, type MachineProgress, type PlannedMove } from './machine.js';
export { readAgents } from './agents.js';
export { proxiesInflight, type InflightProbe, type InflightQuery, type InflightVerdict } from './inflight.js';
export type { FailoverOutcome, FailoverResult, LostLag, PhaseEvent, PhaseName, ReplayFound } from './events.js';
export { fileLeases, redisLeases, leaseKey, type Lease, type LeaseHolder, type LeaseStore } from './lease.js';
export { expandHook, runHook, type HookResult, type HookVars } from './hooks.js';
