/**
 * `failoverStore`: one store, controlled or crash, as phases (see ./index.ts for the order and
 * what each guarantees). The run never throws for an expected outcome: it returns what happened
 * and leaves the store in a consistent state (active on the old master before the switch, active
 * on the new one after it), saying which.
 */
import { AgentError, requestAgentOp, type StoreVerdict } from '../agent/index.js';
import type { Config } from '../config/index.js';
import type { FailoverConfig } from '../config/sections/failover.js';
import { DirectoryConflictError, DirectoryNotFoundError, DirectoryRuleError, DirectoryUnavailableError } from '../core/errors.js';
import type { Directory, Slot, SlotState, Store, StoreState } from '../directory/index.js';
import { readAgents, verdictOf, type AgentsView } from './agents.js';
import type { FailoverOutcome, FailoverResult, LostLag, PhaseEvent, PhaseName, ReplayFound } from './events.js';
import { describeHook, runHooks, type HookVars } from './hooks.js';
import type { InflightProbe } from './inflight.js';
import type { Lease, LeaseStore } from './lease.js';

export interface FailoverStoreOptions {
  directory: Directory;
  store: string;
  /** Target slot; default: the store's one other slot that is up. */
  to?: string;
  crash?: boolean;
  /** Overrides: target slot not up, target agent not reporting, store not active. Never the lease, the epoch or the drain. */
  force?: boolean;
  /** Deadlines and hooks (`failover` config section). */
  settings: FailoverConfig;
  /** The `agent` section: how stale a report may be, the thresholds behind `caught-up`. */
  agent: Config['agent'];
  /** The agents' token (agent.token), for `flush`. */
  agentToken?: string | undefined;
  leases: LeaseStore;
  /** Asks the proxies whether anything is still in flight to the old master (inflight.ts); absent: the hold waits `holdMs`. */
  inflight?: InflightProbe;
  /** The same replay `storeroute replay --store S --since T` runs; absent: verify is skipped. */
  replay?: (store: string, since: Date) => Promise<ReplayFound>;
  actor: string;
  onEvent?: (e: PhaseEvent) => void;
  /** Ctrl-C: stops between phases (and inside waits), then rolls back. */
  signal?: AbortSignal;
}

class Stop extends Error {
  constructor(readonly outcome: FailoverOutcome, message: string, readonly extra: Partial<FailoverResult> = {}) {
    super(message);
  }
}

const sleep = (ms: number, signal?: AbortSignal) => new Promise<void>((resolve) => {
  const t = setTimeout(done, ms);
  function done() {
    clearTimeout(t);
    signal?.removeEventListener('abort', done);
    resolve();
  }
  signal?.addEventListener('abort', done, { once: true });
});

export async function failoverStore(o: FailoverStoreOptions): Promise<FailoverResult> {
  const started = Date.now();
  const dir = o.directory;
  const name = o.store;
  let from = null as Slot | null;
  let to = null as Slot | null;
  let epoch = null as number | null;
  let switched = false;
  let held = false;
  /** The pre-switch hooks ran: from here on Ctrl-C no longer stops the run (see phase()). */
  let committed = false;
  let slotBefore: SlotState | null = null;
  /** The store's state before the hold: what a rollback restores (a stuck failing-over becomes active). */
  let storeBefore: StoreState = 'active';
  let lease: Lease | null = null;
  let lostLag: LostLag | undefined;
  /** A user of the store, for asking proxies what they route (none: nothing can be in flight). */
  let aUser: string | null = null;

  const emit = (phase: PhaseName, status: PhaseEvent['status'], ms: number, detail: string) => o.onEvent?.({ phase, status, ms, detail });
  const audit = async (phase: PhaseName, result: string, detail: string, ms: number) => {
    try {
      await dir.recordEvent({ actor: o.actor, action: `failover-${phase}`, target: `store:${name}`,
        detail: { result, detail, ms, from: from?.name ?? null, to: to?.name ?? null, crash: o.crash === true } });
    } catch {
      // The audit record is not worth aborting a failover for; the directory error shows in the next phase.
    }
  };
  /** Runs one phase, emitting and auditing it; `failed: true` reports a failure the run goes on from (a post-switch hook). */
  const phase = async <T>(p: PhaseName, fn: () => Promise<{ value: T; detail: string; failed?: boolean }>,
    opts: { committed?: boolean } = {}): Promise<T> => {
    // Committed phases run even after Ctrl-C: once the pre-switch hooks have run (they may have
    // stopped the old master) the only consistent way is forward, through switch, hooks and release.
    if (o.signal?.aborted && !opts.committed) throw new Stop('interrupted', `interrupted before ${p}`);
    const t0 = Date.now();
    emit(p, 'start', 0, '');
    try {
      const { value, detail, failed } = await fn();
      const status = failed ? 'failed' : 'ok';
      emit(p, status, Date.now() - t0, detail);
      await audit(p, status, detail, Date.now() - t0);
      return value;
    } catch (err) {
      const msg = (err as Error).message;
      emit(p, 'failed', Date.now() - t0, msg);
      await audit(p, 'failed', msg, Date.now() - t0);
      throw err;
    }
  };
  const skip = (p: PhaseName, why: string) => emit(p, 'skipped', 0, why);
  const result = (outcome: FailoverOutcome, detail: string, extra: Partial<FailoverResult> = {}): FailoverResult => ({
    outcome, store: name, from: from?.name ?? null, to: to?.name ?? null, epoch, detail, ms: Date.now() - started,
    ...(lostLag ? { lostLag } : {}), ...extra,
  });

  /** Before the switch: the store back to active on its old master, the old slot's state as it was. */
  const rollback = async (why: string): Promise<{ text: string; ok: boolean; err?: unknown }> => {
    const t0 = Date.now();
    const done: string[] = [];
    try {
      if (slotBefore !== null && from) {
        await dir.setSlotState(from.name, slotBefore, o.actor);
        done.push(`slot ${from.name} ${slotBefore} again`);
      }
      if (held) {
        const back = storeBefore === 'failing-over' ? 'active' : storeBefore;
        await dir.setStoreState(name, back, o.actor);
        done.push(`store ${name} ${back} on its old master ${from?.name ?? '?'}`);
      }
      const text = done.length ? `rolled back (${why}): ${done.join(', ')}` : `nothing to roll back (${why})`;
      emit('rollback', 'ok', Date.now() - t0, text);
      await audit('rollback', 'ok', text, Date.now() - t0);
      return { text, ok: true };
    } catch (err) {
      const text = `ROLLBACK FAILED (${why}): ${(err as Error).message}; done: ${done.join(', ') || 'nothing'}; `
        + `check with \`storeroute store show ${name}\` and set the store active by hand`;
      emit('rollback', 'failed', Date.now() - t0, text);
      return { text, ok: false, err };
    }
  };

  try {
    // An unknown store is refused before anything is taken (its name also names the lease).
    if (!(await dir.getStore(name))) {
      emit('preflight', 'failed', 0, `no store ${name}`);
      return result('refused', `no store ${name}`);
    }
    // The lease first: a run waiting on another must read the store after that one is done.
    lease = await phase('lease', async () => {
      const got = await o.leases.acquire(name, o.actor, o.settings.leaseTtlMs);
      if ('heldBy' in got) {
        const h = got.heldBy;
        throw new Stop('refused', `another failover of ${name} is running${h ? ` (${h.holder} on ${h.host} pid ${h.pid}, lease until ${new Date(h.expiresAt).toISOString()})` : ''}`);
      }
      return { value: got.lease, detail: `held until ${new Date(got.lease.holder.expiresAt).toISOString()}` };
    });

    const store = await phase('preflight', async () => {
      const p = await preflight(o);
      from = p.from;
      to = p.to;
      epoch = p.store.epoch;
      aUser = p.aUser;
      storeBefore = p.store.state;
      if (o.crash) {
        const r = p.agents.reports.get(p.from.name);
        lostLag = { slot: p.from.name, pendingBytes: r?.pendingBytes ?? null, oldestPendingAgeMs: r?.oldestPendingAgeMs ?? null,
          reportAgeMs: r ? p.agents.now - r.measuredAt : null, users: r?.users ?? [] };
      }
      return { value: p.store, detail: `${name}: ${p.from.name} (${p.from.machine}) → ${p.to.name} (${p.to.machine}), epoch ${p.store.epoch}${p.notes.length ? `; forced: ${p.notes.join('; ')}` : ''}` };
    });

    const f = from as unknown as Slot;
    const t = to as unknown as Slot;
    const vars: HookVars = { store: name, from: f.name, to: t.name, fromMachine: f.machine, toMachine: t.machine, fromIp: f.ip, toIp: t.ip };

    if (!o.crash) await phase('flush', () => preFlush(o, f));

    const holdStarted = await phase('hold', async () => {
      held = true;
      await dir.setStoreState(name, 'failing-over', o.actor);
      const at = Date.now();
      if (o.crash) return { value: at, detail: `${name} failing-over (deliveries 451, logins wait)` };
      // The drain trusts only readings taken after this: deliveries that were in DATA are done.
      const until = at + o.settings.holdMs;
      if (!aUser) return { value: Date.now(), detail: `${name} failing-over; it has no users, so nothing can be in flight` };
      const asked = o.inflight ? await o.inflight({ store: name, slot: f.name, user: aUser }, until, o.signal) : null;
      if (asked?.quiet) return { value: Date.now(), detail: `${name} failing-over; ${asked.detail} after ${Date.now() - at} ms` };
      await sleep(until - Date.now(), o.signal);
      return { value: Date.now(), detail: `${name} failing-over; waited ${o.settings.holdMs} ms for deliveries already in DATA`
        + `${asked ? ` (${asked.detail})` : ''}` };
    });

    if (o.crash) {
      await phase('mark-down', async () => {
        slotBefore = f.state;
        await dir.setSlotState(f.name, 'down', o.actor);
        return { value: null, detail: `slot ${f.name} down` };
      });
      skip('drain', 'crash: the old master cannot be drained');
      skip('pre-switch', 'crash: the old master is gone');
    } else {
      // The old master's newest report when the hold ended, by its agent's clock: the drain takes
      // only a later one (a clock that runs ahead on the agent's machine cannot pass an old report off as new).
      const seenAtHold = (await readAgents(o.directory, o.agent)).reports.get(f.name)?.measuredAt ?? Number.NEGATIVE_INFINITY;
      await phase('drain', () => drain(o, store, f, holdStarted, seenAtHold));
      if (o.settings.hooks.beforeSwitch.length === 0) skip('pre-switch', 'no hooks configured');
      else {
        await phase('pre-switch', async () => {
          const r = await runHooks(o.settings.hooks.beforeSwitch, vars, o.settings.hooks.timeoutMs, o.signal);
          if (!r.ok) {
            throw new Stop(o.signal?.aborted ? 'interrupted' : 'aborted', `pre-switch hook failed: ${describeHook(r.results.at(-1)!)}`
              + (r.results.length > 1 ? ` (after ${r.results.length - 1} that ran: undo what they did before the store takes mail again)` : ''));
          }
          committed = true;
          return { value: null, detail: `${r.results.length} hook(s) ok` };
        });
      }
    }

    const after = await phase('switch', async () => {
      const s = await dir.failover(name, { to: t.name, expectedEpoch: epoch as number, ...(o.force || o.crash ? { force: true } : {}) }, o.actor);
      switched = true;
      epoch = s.epoch;
      return { value: s, detail: `current master ${f.name} → ${s.currentMaster}, epoch ${s.epoch}` };
    }, { committed });

    let attention: string | null = null;
    if (o.settings.hooks.afterSwitch.length === 0) skip('post-switch', 'no hooks configured');
    else {
      attention = await phase('post-switch', async () => {
        const r = await runHooks(o.settings.hooks.afterSwitch, vars, o.settings.hooks.timeoutMs);
        return r.ok ? { value: null, detail: `${r.results.length} hook(s) ok` }
          : { value: `post-switch hook failed: ${describeHook(r.results.at(-1)!)}`, detail: `switch kept: ${describeHook(r.results.at(-1)!)}`, failed: true };
      }, { committed: true });
    }

    await phase('release', async () => {
      await dir.setStoreState(name, 'active', o.actor);
      return { value: null, detail: `${name} active on ${after.currentMaster}` };
    }, { committed: true });

    let replay: ReplayFound | undefined;
    if (!o.replay) skip('verify', 'no replay path given');
    else if (o.signal?.aborted) skip('verify', 'interrupted: run `storeroute replay` yourself');
    else {
      const since = new Date(started - o.settings.replayWindowMs - (lostLag?.oldestPendingAgeMs ?? 0) - (lostLag?.reportAgeMs ?? 0));
      try {
        replay = await phase('verify', async () => {
          const found = await o.replay!(name, since);
          return { value: found, detail: `replay since ${since.toISOString()}: selected ${found.selected}, already present ${found.alreadyPresent}, delivered ${found.delivered}, refused ${found.refused}, failed ${found.failed}` };
        });
        if (replay.failed > 0) attention ??= `verify: ${replay.failed} message(s) could not be replayed; run \`storeroute replay --store ${name}\` again`;
        if (!o.crash && replay.delivered > 0) attention ??= `verify delivered ${replay.delivered} message(s) a controlled failover should have carried: check replication`;
      } catch (err) {
        attention ??= `verify failed: ${(err as Error).message}; run \`storeroute replay --store ${name} --since ${since.toISOString()}\``;
      }
    }

    await markAttention(o, { attention, from: f.name, to: t.name, epoch: after.epoch, at: Date.now() });
    return result(attention ? 'attention' : 'done', attention ?? `${name} active on ${after.currentMaster}, epoch ${after.epoch}`, replay ? { replay } : {});
  } catch (err) {
    const stop = toStop(err, o.signal);
    if (switched) {
      // After the switch the consistent state is forward: active on the new master.
      let text = `${stop.message}; the switch is done`;
      let active = false;
      try {
        await dir.setStoreState(name, 'active', o.actor);
        active = true;
        text += `: ${name} active on its new master ${to?.name ?? '?'}; run \`storeroute replay --store ${name}\` to verify`;
      } catch (e) {
        text += `, but setting it active failed (${(e as Error).message}): \`storeroute store set-state ${name} active\``;
      }
      await markAttention(o, { attention: text, from: from?.name ?? null, to: to?.name ?? null, epoch, at: Date.now() });
      // Active on the new master after all: switched, needs a look; still held: try again later.
      return result(active ? 'attention' : 'unreachable', text, stop.extra);
    }
    if (stop.outcome === 'refused' && !held) return result('refused', stop.message, stop.extra);
    const back = await rollback(stop.outcome);
    if (!back.ok) {
      // Not where the outcome's contract says (active on the old master): say so, where `status` shows it.
      const text = `${stop.message}; ${back.text}`;
      await markAttention(o, { attention: text, from: from?.name ?? null, to: to?.name ?? null, epoch, at: Date.now() });
      return result(back.err instanceof DirectoryUnavailableError ? 'unreachable' : 'attention', text, stop.extra);
    }
    return result(stop.outcome, `${stop.message}; ${back.text}`, stop.extra);
  } finally {
    if (lease) await lease.release().catch(() => undefined);
  }
}

function toStop(err: unknown, signal: AbortSignal | undefined): Stop {
  if (err instanceof Stop) return err;
  if (signal?.aborted) return new Stop('interrupted', `interrupted (${(err as Error).message})`);
  if (err instanceof DirectoryUnavailableError) return new Stop('unreachable', `directory unavailable: ${err.message}`);
  if (err instanceof DirectoryConflictError) return new Stop('aborted', `conflict: ${err.message}`);
  if (err instanceof DirectoryRuleError || err instanceof DirectoryNotFoundError) return new Stop('aborted', err.message);
  if (err instanceof AgentError) return new Stop(err.code === 'AGENT_UNREACHABLE' ? 'unreachable' : 'aborted', `agent: ${err.message}`);
  return new Stop('aborted', `unexpected: ${(err as Error).message}`);
}

async function markAttention(o: FailoverStoreOptions, doc: { attention: string | null; from: string | null; to: string | null; epoch: number | null; at: number }) {
  try {
    await o.directory.publishStatus('failover', o.store, { ...doc, actor: o.actor });
  } catch {
    // Best effort; the outcome line says the same.
  }
}

interface Preflight {
  store: Store;
  aUser: string | null;
  from: Slot;
  to: Slot;
  agents: AgentsView;
  notes: string[];
}

async function preflight(o: FailoverStoreOptions): Promise<Preflight> {
  const refuse = (why: string) => new Stop('refused', why);
  const snap = await o.directory.snapshot();
  const store = snap.stores[o.store];
  if (!store) throw refuse(`no store ${o.store}`);
  const notes: string[] = [];
  const from = snap.slots[store.currentMaster];
  if (!from) throw refuse(`store ${o.store}: current master ${store.currentMaster} is not a known slot`);
  let toName = o.to;
  if (toName === undefined) {
    const up = store.slots.filter((s) => s !== store.currentMaster && snap.slots[s]?.state === 'up');
    if (up.length !== 1) throw refuse(`store ${o.store}: ${up.length === 0 ? 'no other slot is up' : `slots ${up.join(', ')} are up`}; name one with --to`);
    toName = up[0] as string;
  }
  if (!store.slots.includes(toName)) throw refuse(`slot ${toName} is not a slot of store ${o.store} (${store.slots.join(', ')})`);
  if (toName === store.currentMaster) throw refuse(`slot ${toName} is already the current master of ${o.store}`);
  const to = snap.slots[toName];
  if (!to) throw refuse(`slot ${toName} is not a known slot`);
  if (to.state !== 'up') {
    if (!o.force) throw refuse(`target slot ${to.name} is ${to.state} (--force to fail over anyway)`);
    notes.push(`target slot ${to.name} is ${to.state}`);
  }
  if (store.state !== 'active') {
    if (!o.force) throw refuse(`store ${o.store} is ${store.state}, not active: another failover may be half done (--force to take over)`);
    notes.push(`store was ${store.state}`);
  }
  const agents = await readAgents(o.directory, o.agent);
  const target = agents.machines.get(to.machine);
  if (!target || target.stale) {
    const why = !target ? `no agent reports for machine ${to.machine}`
      : target.ageMs === null ? `the agent on ${to.machine} publishes a report that cannot be used (${target.problem ?? 'malformed'})`
        : `the agent on ${to.machine} last reported ${Math.round(target.ageMs / 1000)} s ago`;
    if (!o.force) throw refuse(`${why}: the new master's replication could not be watched (--force to go on)`);
    notes.push(why);
  }
  if (!o.crash) {
    const source = agents.machines.get(from.machine);
    if (!source || source.stale || !source.url) {
      throw refuse(`${!source ? `no agent reports for machine ${from.machine}` : source.stale ? `the agent on ${from.machine} is stale` : `the agent on ${from.machine} publishes no url`}: `
        + 'the old master cannot be drained (use --crash if it is gone)');
    }
    if (!o.agentToken) throw refuse('agent.token is not set: the old master\'s agent cannot be asked to flush');
  }
  const aUser = Object.values(snap.users).find((u) => u.store === o.store)?.name ?? null;
  return { store, aUser, from, to, agents, notes };
}

function pendingOf(v: StoreVerdict) {
  return { pendingBytes: v.master.pendingBytes, users: v.master.users, reasons: v.master.reasons };
}

function pendingText(slot: string, v: StoreVerdict): string {
  return `${slot} ${v.state}: ${v.master.pendingBytes ?? '?'} bytes pending${v.master.users.length ? ` for ${v.master.users.join(', ')}` : ''}`
    + `${v.master.reasons.length ? ` (${v.master.reasons.join('; ')})` : ''}`;
}

async function agentUrl(o: FailoverStoreOptions, from: Slot): Promise<string> {
  const url = (await readAgents(o.directory, o.agent)).machines.get(from.machine)?.url;
  if (!url) throw new Stop('aborted', `the agent on ${from.machine} publishes no url`);
  return url;
}

/**
 * While mail still flows: the old master's agent pushes its backlog now, so the hold that follows
 * is short. The agent refuses operations on a store that is not active, which is also why this
 * comes before the hold. Nothing has changed yet when this fails: the failover stops here.
 */
async function preFlush(o: FailoverStoreOptions, from: Slot): Promise<{ value: null; detail: string }> {
  const url = await agentUrl(o, from);
  // A rolling sync_client that keeps up: flushing would only wait for it (and under load the log
  // is never empty before the hold); the drain after the hold has next to nothing left.
  const store = await o.directory.getStore(o.store);
  const view = await readAgents(o.directory, o.agent);
  const now = store ? verdictOf(view, store) : null;
  if (now && view.reports.get(from.name)?.rollingClient.running === true && (now.state === 'caught-up' || now.state === 'lagging')) {
    return { value: null, detail: `not needed: ${from.name} ${now.state} with its rolling sync_client running (${now.master.pendingBytes ?? 0} bytes pending)` };
  }
  try {
    const r = await requestAgentOp({ url, token: o.agentToken as string, timeoutMs: o.settings.preFlushMs + 5_000 }, 'flush',
      { slot: from.name, deadlineMs: o.settings.preFlushMs });
    return { value: null, detail: `${from.name}: ${r.pendingBytesBefore ?? '?'} → ${r.pendingBytesAfter ?? '?'} bytes in ${r.durationMs} ms` };
  } catch (err) {
    if (err instanceof AgentError && err.code === 'AGENT_UNREACHABLE') throw err;
    // Still pending at the deadline with replication working: mail keeps arriving until the hold.
    if (err instanceof AgentError && err.code === 'COMMAND_TIMEOUT' && typeof err.facts.pendingBytes === 'number') {
      return { value: null, detail: `${from.name}: ${err.facts.pendingBytes} bytes still pending after ${o.settings.preFlushMs} ms under load; the drain finishes it` };
    }
    const v = await freshVerdict(o, from, Date.now());
    throw new Stop('aborted', `flush of ${from.name} failed: ${(err as Error).message}${v ? `; ${pendingText(from.name, v)}` : ''}`,
      v ? { pending: pendingOf(v) } : {});
  }
}

/** The store's verdict from a report of `from` taken after `since` (waiting up to 3 agent intervals), else the latest. */
async function freshVerdict(o: FailoverStoreOptions, from: Slot, since: number): Promise<StoreVerdict | null> {
  const until = Date.now() + 3 * o.agent.intervalMs;
  for (;;) {
    const store = await o.directory.getStore(o.store);
    if (!store) return null;
    const view = await readAgents(o.directory, o.agent);
    const report = view.reports.get(from.name);
    if ((report && report.measuredAt >= since) || Date.now() >= until) return verdictOf(view, store);
    await sleep(o.settings.pollMs, o.signal);
  }
}

/**
 * After the hold: what was written since the pre-flush must reach the replica. Asks the agent to
 * flush again (today's agent refuses while the store is failing-over; then the rolling
 * sync_client does it) and waits for a report taken since the hold began that says caught-up.
 */
async function drain(o: FailoverStoreOptions, store: Store, from: Slot, holdStarted: number, seenAtHold: number): Promise<{ value: null; detail: string }> {
  const deadline = Date.now() + o.settings.drainTimeoutMs;
  const left = () => deadline - Date.now();
  const url = await agentUrl(o, from);
  let flushNote = 'flush: pending';
  let flushError: unknown = null;
  // The flush is asked after the hold began, so its "log empty" answer is itself a reading taken
  // since the hold: enough to switch, without waiting for the agent's next periodic report.
  let flushedEmpty = false;
  let flushSettled = false;
  const flushed = requestAgentOp({ url, token: o.agentToken as string, timeoutMs: Math.max(1_000, left()) }, 'flush',
    { slot: from.name, deadlineMs: Math.max(100, left() - 200) })
    .finally(() => { flushSettled = true; })
    .then((r) => {
      flushNote = `flush: ${r.pendingBytesBefore ?? '?'} → ${r.pendingBytesAfter ?? '?'} bytes in ${r.durationMs} ms`;
      flushedEmpty = r.pendingBytesAfter === 0;
    }, (err: unknown) => {
      if (err instanceof AgentError && err.code === 'AGENT_UNREACHABLE') flushError = err;
      flushNote = `flush not done (${(err as Error).message}), waited for the rolling sync_client`;
    });
  for (;;) {
    if (flushError) throw flushError;
    if (flushedEmpty) return { value: null, detail: `${from.name} caught-up: the agent emptied its sync log (${flushNote})` };
    const view = await readAgents(o.directory, o.agent);
    const v = verdictOf(view, store);
    const report = view.reports.get(from.name);
    if (v.state === 'caught-up' && report && report.measuredAt >= holdStarted && report.measuredAt > seenAtHold) {
      return { value: null, detail: `${from.name} caught-up (${flushNote})` };
    }
    if (o.signal?.aborted) throw new Stop('interrupted', `interrupted while draining (${v.state})`);
    if (left() <= 0) {
      throw new Stop('aborted', `drain deadline (${o.settings.drainTimeoutMs} ms) passed with ${pendingText(from.name, v)}; ${flushNote}`,
        { pending: pendingOf(v) });
    }
    // Woken early by the flush's answer, but only while it is outstanding (a settled one would spin).
    const wait = sleep(Math.min(o.settings.pollMs, Math.max(0, left())), o.signal);
    await (flushSettled ? wait : Promise.race([wait, flushed]));
  }
}
