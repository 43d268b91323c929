/**
 * `checkReplication`: every user in scope, master against replica, with bounded concurrency and an
 * optional rate. Each user ends in exactly one of four verdicts: identical, different, in flight, or
 * not checked (a side could not be read). Nothing unread is ever counted as identical.
 *
 * A user found different is checked once more after `recheckDelayMs` before it is reported: rolling
 * replication trails the master by about a second, and a message that arrived mid-check would
 * otherwise be a false alarm. A user the directory or the agent shows in flight is re-checked
 * after the same wait, then reported as in flight. The wait does not hold a worker (JobQueue).
 */
import type { Logger } from 'pino';
import { DirectoryUnavailableError } from '../core/errors.js';
import { canonicalUser, type DirectoryReader, type DirectorySnapshot, type Slot } from '../directory/index.js';
import { CheckError } from './errors.js';
import { AgentSignals, inFlightByDirectory, type AgentAccess, type ReplicationReports } from './flight.js';
import type { ImapSettings } from './imap.js';
import { SlotCatalog } from './catalog.js';
import { SlotPool } from './pool.js';
import { JobQueue, realClock, TokenBucket, type Clock } from './schedule.js';
import { compareUser, type CheckMode, type Difference, type UserRoute } from './user.js';
import { buildResult, type CheckResult, type CheckScope, type RepairOutcome, type UserOutcome } from './result.js';
import { repairUsers } from './repair.js';

export interface CheckOptions {
  directory: DirectoryReader;
  imap: ImapSettings;
  scope: CheckScope;
  mode?: CheckMode;
  /** Users checked at once (each holds one admin connection per slot of its store). Default 4. */
  concurrency?: number;
  /** Users started per second at most (re-checks count). Default: no limit. */
  ratePerSecond?: number;
  /** Wait before a re-check. Default 2 s. */
  recheckDelayMs?: number;
  /** The slot agents' last reports: a differing user the master has not sent yet is in flight. */
  replication?: ReplicationReports | null;
  /** The slot agents' HTTP ports, for --repair. */
  agents?: AgentAccess | null;
  repair?: boolean;
  /** How long --repair waits for the master's log to drain. Default 60 s. */
  repairDeadlineMs?: number;
  logger: Logger;
  onProgress?: (p: CheckProgress) => void;
  clock?: Clock;
}

export interface CheckProgress {
  done: number;
  total: number;
  different: number;
  elapsedMs: number;
  usersPerSecond: number;
  /** null for the first few users (too few to extrapolate from). */
  etaMs: number | null;
}

/** From this many users of a slot in scope, one slot-wide LIST is cheaper than one LIST each (catalog.ts). */
const CATALOG_MIN_USERS = 8;
/** A catalog older than this is taken again (a rate-limited run can last the whole day). */
const CATALOG_MAX_AGE_MS = 10 * 60_000;

interface Job {
  user: string;
  attempt: number;
}

/** The users a scope names, sorted. Unknown names are refused before anything is contacted. */
export function usersInScope(snap: DirectorySnapshot, scope: CheckScope): string[] {
  if (scope.all) return Object.keys(snap.users).sort();
  const stores = scope.stores ?? [];
  const users = scope.users ?? [];
  if (stores.length === 0 && users.length === 0) {
    throw new CheckError('CHECK_BAD_OPTION', 'nothing to check: give --all, --store STORE or --user USER');
  }
  const out = new Set<string>();
  for (const s of stores) {
    if (!snap.stores[s]) throw new CheckError('CHECK_UNKNOWN_STORE', `store ${JSON.stringify(s)} does not exist`, { store: s });
    for (const u of Object.values(snap.users)) if (u.store === s) out.add(u.name);
  }
  for (const raw of users) {
    const u = canonicalUser(raw);
    if (!snap.users[u]) throw new CheckError('CHECK_UNKNOWN_USER', `user ${JSON.stringify(raw)} does not exist`, { user: raw });
    out.add(u);
  }
  return [...out].sort();
}

/** The user's store and slots, or why it cannot be checked. */
function routeOf(user: string, lookup: { user: DirectorySnapshot['users'][string] | null; store: DirectorySnapshot['stores'][string] | null;
  slots: ReadonlyMap<string, Slot | null> }): UserRoute | CheckError {
  const { store } = lookup;
  if (!lookup.user) return new CheckError('STORE_INCOMPLETE', `user ${user} was deleted from the directory during the check`, { user });
  if (!store) return new CheckError('STORE_INCOMPLETE', `store ${lookup.user.store} of user ${user} does not exist`, { user });
  const master = lookup.slots.get(store.currentMaster);
  const replicas = store.slots.filter((s) => s !== store.currentMaster).map((s) => lookup.slots.get(s));
  if (!master) return new CheckError('STORE_INCOMPLETE', `store ${store.name}: current master ${store.currentMaster} is not in the directory`, { store: store.name });
  if (replicas.length === 0 || replicas.some((r) => !r)) {
    return new CheckError('STORE_INCOMPLETE', `store ${store.name} has no replica to compare with`, { store: store.name });
  }
  return { user, store: store.name, master, replicas: replicas as Slot[] };
}

export async function checkReplication(opts: CheckOptions): Promise<CheckResult> {
  const clock = opts.clock ?? realClock;
  const mode = opts.mode ?? 'quick';
  const concurrency = opts.concurrency ?? 4;
  const recheckDelayMs = opts.recheckDelayMs ?? 2_000;
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new CheckError('CHECK_BAD_OPTION', `concurrency must be a whole number ≥ 1, got ${concurrency}`);
  if (opts.ratePerSecond !== undefined && !(Number.isFinite(opts.ratePerSecond) && opts.ratePerSecond > 0)) {
    throw new CheckError('CHECK_BAD_OPTION', `rate must be a number of users per second above 0, got ${opts.ratePerSecond}`);
  }
  if (opts.imap.password === undefined) {
    throw new CheckError('CHECK_NOT_CONFIGURED', 'replay.imap.password is not configured: the check logs in to Cyrus as that admin (replay.imap.user)');
  }
  if (opts.repair && !opts.agents) {
    throw new CheckError('CHECK_NOT_CONFIGURED', '--repair asks the master\'s slot agent to queue users: give --agent MACHINE=URL for the masters\' machines and set agent.token');
  }
  const log = opts.logger.child({ component: 'check' });
  const startedAt = clock.now();
  const snap = await opts.directory.snapshot();
  const users = usersInScope(snap, opts.scope);
  const signals = new AgentSignals(opts.replication ?? null, opts.agents ?? null, Math.max(500, recheckDelayMs / 2));
  const bucket = opts.ratePerSecond !== undefined ? new TokenBucket(opts.ratePerSecond, clock) : null;
  // Slots with enough users in scope get a catalog (one LIST per slot instead of one per user).
  const usersPerSlot = new Map<string, string[]>();
  for (const u of users) {
    for (const s of snap.stores[snap.users[u]?.store ?? '']?.slots ?? []) {
      const list = usersPerSlot.get(s);
      if (list) list.push(u);
      else usersPerSlot.set(s, [u]);
    }
  }
  const snapSlots = new Map(Object.values(snap.slots).map((s) => [s.name, s]));
  const catalogs = new Map<string, SlotCatalog | null>();
  const catalogOf = (slot: Slot): SlotCatalog | null => {
    if (!catalogs.has(slot.name)) {
      const mine = usersPerSlot.get(slot.name) ?? [];
      catalogs.set(slot.name, mine.length >= CATALOG_MIN_USERS ? new SlotCatalog(poolOf(slot), mine, CATALOG_MAX_AGE_MS, () => clock.now(), log) : null);
    }
    return catalogs.get(slot.name)!;
  };
  const pools = new Map<string, SlotPool>();
  const poolOf = (slot: Slot): SlotPool => {
    let p = pools.get(slot.name);
    if (!p) pools.set(slot.name, p = new SlotPool({ name: slot.name, host: slot.ip, port: opts.imap.port ?? slot.imap }, opts.imap, concurrency, log));
    return p;
  };
  const outcomes = new Map<string, UserOutcome>();
  let different = 0;
  const progress = () => {
    const elapsedMs = clock.now() - startedAt;
    const done = outcomes.size;
    const rate = elapsedMs > 0 ? (done * 1000) / elapsedMs : 0;
    opts.onProgress?.({ done, total: users.length, different, elapsedMs, usersPerSecond: rate,
      // An ETA from the first few users (the catalog LIST, the logins) would only mislead.
      etaMs: done >= Math.min(10, users.length) && rate > 0 ? ((users.length - done) / rate) * 1000 : null });
  };
  const settle = (o: UserOutcome) => {
    outcomes.set(o.user, o);
    if (o.verdict === 'different') different++;
    progress();
  };

  const lookupFresh = async (user: string) => {
    const u = await opts.directory.getUser(user);
    const store = u ? await opts.directory.getStore(u.store) : null;
    const slots = new Map<string, Slot | null>();
    for (const s of store?.slots ?? []) slots.set(s, await opts.directory.getSlot(s));
    return { user: u, store, slots };
  };

  const outcome = (user: string, route: UserRoute | null, verdict: UserOutcome['verdict'], extra: Partial<UserOutcome> = {}): UserOutcome => ({
    user, store: route?.store ?? '', master: route?.master.name ?? null, replicas: route?.replicas.map((r) => r.name) ?? [],
    differences: [], verdict, ...extra,
  });

  const runJob = async (job: Job, queue: JobQueue<Job>): Promise<void> => {
    const last = job.attempt > 0;
    /** First pass: come back after the wait. Re-check: this is the verdict. */
    const recheckOr = (final: UserOutcome): void => {
      if (last) settle(final);
      else queue.push({ user: job.user, attempt: 1 }, clock.now() + recheckDelayMs);
    };
    let lookup;
    try {
      // The first pass reads the snapshot the scope came from; a re-check asks the directory again.
      lookup = last ? await lookupFresh(job.user)
        : { user: snap.users[job.user] ?? null, store: snap.stores[snap.users[job.user]?.store ?? ''] ?? null, slots: snapSlots };
    } catch (err) {
      const code = err instanceof DirectoryUnavailableError ? 'DIRECTORY_UNAVAILABLE' : 'STORE_INCOMPLETE';
      return settle(outcome(job.user, null, 'unchecked', { code, reason: (err as Error).message }));
    }
    const route = routeOf(job.user, lookup);
    if (route instanceof CheckError) {
      return settle(outcome(job.user, null, 'unchecked', { store: lookup.user?.store ?? '', code: route.code, reason: route.message }));
    }
    const byDirectory = inFlightByDirectory(lookup.user!, lookup.store);
    if (byDirectory) {
      catalogOf(route.master)?.forget(job.user);
      for (const r of route.replicas) catalogOf(r)?.forget(job.user);
      return recheckOr(outcome(job.user, route, 'in-flight', { reason: byDirectory }));
    }
    await bucket?.take();
    let differences: Difference[];
    try {
      // A re-check lists the user afresh: the catalog's age may be what made it look different.
      ({ differences } = await compareUser(route, { mode, pools: poolOf, catalogs: last ? () => null : catalogOf, deepNow: last || mode === 'deep-all' }));
    } catch (err) {
      const e = err instanceof CheckError ? err : new CheckError('IMAP_UNREACHABLE', (err as Error).message);
      return settle(outcome(job.user, route, 'unchecked', { code: e.code, reason: e.message, ...(typeof e.facts.slot === 'string' ? { slot: e.facts.slot } : {}) }));
    }
    if (differences.length === 0) return settle(outcome(job.user, route, 'identical'));
    const agent = await signals.verdict(route.master.name, job.user, clock.now());
    const note = agent.note ? { note: agent.note } : {};
    recheckOr(agent.inFlight ? outcome(job.user, route, 'in-flight', { reason: agent.inFlight, ...note })
      : outcome(job.user, route, 'different', { differences, ...note }));
  };

  const runAll = async (names: string[]): Promise<void> => {
    const queue = new JobQueue<Job>(names.map((user) => ({ user, attempt: 0 })), clock);
    const worker = async () => {
      for (let job = await queue.take(); job !== null; job = await queue.take()) {
        try {
          await runJob(job, queue);
        } catch (err) {
          // runJob settles every expected failure; anything else is a bug, but one user's bug must
          // not stop the run nor count that user as checked.
          log.error({ err, user: job.user }, 'check_user_crashed');
          settle({ user: job.user, store: '', master: null, replicas: [], differences: [], verdict: 'unchecked',
            code: 'IMAP_UNREACHABLE', reason: `internal error: ${(err as Error).message}` });
        } finally {
          queue.done();
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, Math.max(1, names.length)) }, worker));
  };

  let repairs: RepairOutcome[] = [];
  try {
    await runAll(users);
    if (opts.repair) {
      const todo = [...outcomes.values()].filter((o) => o.verdict === 'different');
      if (todo.length > 0) {
        repairs = await repairUsers(todo, snap, signals, opts.repairDeadlineMs ?? 60_000, log);
        const queued = repairs.filter((r) => r.queued).map((r) => r.user);
        for (const u of queued) outcomes.delete(u);
        different -= queued.length;
        await runAll(queued);
      }
    }
  } finally {
    await Promise.allSettled([...pools.values()].map((p) => p.close()));
  }
  const slotFailures = [...pools.values()].flatMap((p) => (p.failure ? [{ slot: p.slot.name, code: p.failure.code, message: p.failure.message }] : []));
  return buildResult({
    startedAt, finishedAt: clock.now(), mode, scope: opts.scope, users: users.map((u) => outcomes.get(u)!),
    slotFailures, repairs, warnings: [...signals.warnings],
  });
}
