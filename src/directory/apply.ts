/**
 * `directory apply`: the difference between the live directory and a directory file, as an
 * ordered list of ordinary audited mutations, checked as a whole (simulated against a copy of the
 * live snapshot with the same rules the backends enforce) and then committed as ONE change
 * (Directory.commit): a reader sees the directory before or after, never half of it.
 *
 * Order: slots are created/updated first, then stores (created, updated, failed over), then
 * users, then deletions in reverse (users, stores, slots). Within that order, a mutation that is
 * not yet valid (a slot still held by a store that the file changes later) waits for one that
 * makes it valid; what can never become valid is reported, every problem at once.
 *
 * Deletions are the dangerous part (a truncated file would delete everyone): they are refused
 * unless `prune` is set, and deleting more than `maxDeleteShare` of the live users is refused
 * unless `force` is set too.
 */
import { DirectoryConflictError, DirectoryFileError, DirectoryRuleError, type FileProblem } from '../core/errors.js';
import type { DirectorySnapshot, Slot, Store, User } from './model.js';
import type { Directory } from './types.js';
import { planMutation, targetOf, type Mutation } from './rules.js';
import { DraftSnapshot } from './changeset.js';
import { readDirectoryFile } from './file.js';
import { describeMutation } from './mutations.js';

export { describeMutation, runMutation } from './mutations.js';

function sameSlotPlace(a: Slot, b: Slot): boolean {
  return a.machine === b.machine && a.ip === b.ip && a.lmtp === b.lmtp && a.imap === b.imap && a.pop3 === b.pop3;
}

function sameLayout(a: Store, b: Store): boolean {
  return a.preferredMaster === b.preferredMaster && a.slots.join(',') === b.slots.join(',');
}

/** A user's mutations, which must run in this order. */
function userChain(live: User | undefined, want: User | undefined): Mutation[] {
  const name = (want ?? live)?.name as string;
  if (!want) return live ? [{ op: 'deleteUser', name }] : [];
  const chain: Mutation[] = [];
  let store: string;
  let state: User['state'];
  if (!live) {
    chain.push({ op: 'createUser', input: { name, store: want.store, state: want.state === 'suspended' ? 'suspended' : 'active' } });
    store = want.store;
    state = want.state === 'suspended' ? 'suspended' : 'active';
  } else {
    store = live.store;
    state = live.state;
    if (live.state === 'moving') {
      if (want.state === 'moving' && want.store === live.store && want.movingTo === live.movingTo) {
        return hashChange(live, want);
      }
      if (want.store === live.movingTo) {
        chain.push({ op: 'finishMove', name });
        store = want.store;
      } else chain.push({ op: 'abortMove', name });
      state = 'active';
    }
  }
  if (want.store !== store) {
    chain.push({ op: 'beginMove', name, toStore: want.store }, { op: 'finishMove', name });
    state = 'active';
  }
  if (want.state === 'moving' && want.movingTo) chain.push({ op: 'beginMove', name, toStore: want.movingTo });
  else if (want.state !== state) chain.push({ op: 'setUserState', name, state: want.state });
  return [...chain, ...hashChange(live, want)];
}

/** A file entry without passwordHash leaves the live hash alone: hashes are set with `user set-password`. */
function hashChange(live: User | undefined, want: User): Mutation[] {
  if (want.passwordHash === undefined || want.passwordHash === live?.passwordHash) return [];
  return [{ op: 'setPasswordHash', name: want.name, hash: want.passwordHash }];
}

/** Chains in priority order; each chain's mutations run in order. */
function chains(live: DirectorySnapshot, want: DirectorySnapshot): Mutation[][] {
  const out: Mutation[][] = [];
  for (const [name, w] of Object.entries(want.slots)) {
    const l = live.slots[name];
    if (!l) out.push([{ op: 'createSlot', input: { ...w } }]);
    else if (!sameSlotPlace(l, w)) out.push([{ op: 'updateSlot', input: { ...w } }]);
    else if (l.state !== w.state) out.push([{ op: 'setSlotState', name, state: w.state }]);
  }
  for (const [name, w] of Object.entries(want.stores)) {
    const l = live.stores[name];
    if (!l) {
      // The file's epoch is a floor: a restore from an export must not send epochs back to 0.
      out.push([{ op: 'createStore', input: { name, slots: [...w.slots], preferredMaster: w.preferredMaster,
        currentMaster: w.currentMaster, state: w.state, ...(w.epoch > 0 ? { epoch: w.epoch } : {}) } }]);
      continue;
    }
    // Separate chains: whether the failover or the layout change must go first depends on which
    // slots come and go, and the scheduler finds the order that is valid.
    if (!sameLayout(l, w)) out.push([{ op: 'updateStore', input: { name, slots: [...w.slots], preferredMaster: w.preferredMaster } }]);
    if (l.currentMaster !== w.currentMaster) {
      out.push([{ op: 'failover', store: name, options: { to: w.currentMaster, expectedEpoch: l.epoch } }]);
    }
    if (l.state !== w.state) out.push([{ op: 'setStoreState', name, state: w.state }]);
  }
  for (const name of new Set([...Object.keys(live.users), ...Object.keys(want.users)])) {
    const c = userChain(live.users[name], want.users[name]);
    if (c.length > 0) out.push(c);
  }
  for (const name of Object.keys(live.stores)) if (!want.stores[name]) out.push([{ op: 'deleteStore', name }]);
  for (const name of Object.keys(live.slots)) if (!want.slots[name]) out.push([{ op: 'deleteSlot', name }]);
  return out;
}

/** "slot:slot101" → "slots.slot101": where in the file the problem lies. */
function filePath(m: Mutation): string {
  const [kind, name] = targetOf(m).split(/:(.*)/s);
  return `${kind}s.${name}`;
}

function problemOf(m: Mutation, err: unknown): FileProblem {
  const e = err as { message?: string; rule?: string; code?: string };
  return { path: filePath(m), message: `${m.op}: ${e.message ?? String(err)} [${e.rule ?? e.code ?? 'ERROR'}]` };
}

/**
 * The ordered mutations that turn `live` into `desired`, each checked against the state the
 * previous ones leave. Throws DirectoryFileError listing every mutation that cannot be made valid.
 *
 * At every step the highest-priority chain whose next mutation is valid runs. Chains are visited
 * once, in order; only those found blocked are retried, after each step, so a file of 100,000
 * users plans in linear time (the blocked list stays short: a blocked chain waits for a few
 * slot or store changes).
 */
export function diffDirectory(live: DirectorySnapshot, desired: DirectorySnapshot, file = '(directory file)'): Mutation[] {
  const sim = new DraftSnapshot(live);
  const plan: Mutation[] = [];
  const blocked: Mutation[][] = [];
  const tryHead = (chain: Mutation[]): boolean => {
    let changes;
    try {
      changes = planMutation(sim.snap, chain[0] as Mutation);
    } catch {
      return false; // maybe valid once a later mutation ran
    }
    sim.apply(changes);
    plan.push(chain.shift() as Mutation);
    return true;
  };
  /** Runs the first valid head among the blocked chains (they all outrank the chain at hand). */
  const unblockOne = (): boolean => {
    for (let i = 0; i < blocked.length; i++) {
      const chain = blocked[i] as Mutation[];
      if (tryHead(chain)) {
        if (chain.length === 0) blocked.splice(i, 1);
        return true;
      }
    }
    return false;
  };
  for (const chain of chains(live, desired)) {
    while (chain.length > 0 && tryHead(chain)) {
      // A step may have unblocked a higher-priority chain: those run first, each step restarting.
      while (blocked.length > 0 && unblockOne()) { /* keep going */ }
    }
    if (chain.length > 0) blocked.push(chain);
  }
  if (blocked.length === 0) return plan;
  throw new DirectoryFileError(file, blocked.map((chain) => {
    const head = chain[0] as Mutation;
    try {
      planMutation(sim.snap, head);
      return { path: filePath(head), message: `${head.op}: blocked` };
    } catch (err) {
      return problemOf(head, err);
    }
  }));
}

export interface ApplyOptions {
  actor: string;
  /** Plan and validate only. */
  dryRun?: boolean;
  /** Allow the plan to delete users, stores and slots the file does not list. */
  prune?: boolean;
  /** With prune: allow deleting more than `maxDeleteShare` of the live users at once. */
  force?: boolean;
  /** The largest share (0-1) of the live users one apply may delete without `force`. Default 0.1. */
  maxDeleteShare?: number;
  /**
   * Hears each plan before it is checked for deletions and committed (again after a lost race,
   * with the plan made against the newer directory): the CLI prints it from here.
   */
  onPlan?: (plan: { live: DirectorySnapshot; mutations: Mutation[]; deletions: Deletions }) => void;
}

export const DEFAULT_MAX_DELETE_SHARE = 0.1;

export interface Deletions {
  users: number;
  stores: number;
  slots: number;
}

export interface ApplyResult {
  /** The planned mutations, in order. */
  mutations: Mutation[];
  /** How many were applied (0 on a dry run). */
  applied: number;
  fromVersion: number;
  toVersion: number;
  /** What the plan deletes (applied only with `prune`). */
  deletions: Deletions;
}

/**
 * No longer thrown by applyDirectory (its changes are committed all or none); kept because
 * src/cli/io.ts still maps it to an exit code.
 */
export class DirectoryApplyIncompleteError extends Error {
  constructor(readonly applied: number, readonly total: number, readonly failed: Mutation, options: { cause: unknown }) {
    super(`applied ${applied} of ${total} changes; "${describeMutation(failed)}" failed: ${(options.cause as Error)?.message ?? String(options.cause)}. Re-run apply to finish.`, options);
    this.name = 'DirectoryApplyIncompleteError';
  }
}

export function countDeletions(mutations: Mutation[]): Deletions {
  const d: Deletions = { users: 0, stores: 0, slots: 0 };
  for (const m of mutations) {
    if (m.op === 'deleteUser') d.users++;
    else if (m.op === 'deleteStore') d.stores++;
    else if (m.op === 'deleteSlot') d.slots++;
  }
  return d;
}

/** Refuses deletions without `prune`, and too many user deletions without `force` (DirectoryRuleError). */
export function checkDeletions(d: Deletions, liveUsers: number, options: ApplyOptions, file: string): void {
  if (d.users + d.stores + d.slots === 0) return;
  if (!options.prune) {
    throw new DirectoryRuleError('PRUNE_REQUIRED', `${file} does not list ${d.users} user(s), ${d.stores} store(s) and `
      + `${d.slots} slot(s) the directory has: applying it deletes them (see the plan); nothing was changed. `
      + 'Re-run with --prune to delete them.');
  }
  const share = options.maxDeleteShare ?? DEFAULT_MAX_DELETE_SHARE;
  if (!options.force && liveUsers > 0 && d.users / liveUsers > share) {
    throw new DirectoryRuleError('TOO_MANY_DELETIONS', `${file} deletes ${d.users} of ${liveUsers} users `
      + `(${(100 * d.users / liveUsers).toFixed(1)}%), more than the ${(100 * share).toFixed(1)}% one apply may delete; `
      + 'nothing was changed. Re-run with --force if that is intended.');
  }
}

/** How often a commit that lost its race to another change is planned again before giving up. */
const COMMIT_ATTEMPTS = 3;

/**
 * Makes the live directory equal to `desired` (a snapshot, or a directory file path). Validates
 * the whole result first: on any problem, throws DirectoryFileError and applies nothing. The
 * changes are committed at once; when another change lands between planning and committing, the
 * plan is made again (a few times) against the newer directory.
 */
export async function applyDirectory(dir: Directory, desired: DirectorySnapshot | string, options: ApplyOptions): Promise<ApplyResult> {
  const file = typeof desired === 'string' ? desired : '(directory file)';
  const want = typeof desired === 'string' ? await readDirectoryFile(desired) : desired;
  for (let attempt = 1; ; attempt++) {
    const live = await dir.snapshot();
    const mutations = diffDirectory(live, want, file);
    const deletions = countDeletions(mutations);
    options.onPlan?.({ live, mutations, deletions });
    const unchanged = { mutations, applied: 0, fromVersion: live.version, toVersion: live.version, deletions };
    if (options.dryRun || mutations.length === 0) return unchanged;
    checkDeletions(deletions, Object.keys(live.users).length, options, file);
    try {
      const r = await dir.commit({ base: live, mutations }, options.actor);
      return { ...unchanged, applied: mutations.length, toVersion: r.toVersion };
    } catch (err) {
      if (!(err instanceof DirectoryConflictError) || attempt >= COMMIT_ATTEMPTS) {
        if (err instanceof DirectoryConflictError) {
          throw new DirectoryConflictError(`the directory changed ${attempt} times while ${file} was being applied; `
            + `nothing was applied: ${err.message}`);
        }
        throw err;
      }
    }
  }
}
