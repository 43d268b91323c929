/**
 * `directory apply`: the difference between the live directory and a directory file, as an
 * ordered list of ordinary audited mutations, checked as a whole (simulated against a copy of the
 * live snapshot with the same rules the backends enforce) before the first one is applied.
 *
 * Order: slots are created/updated first, then stores (created, updated, failed over), then
 * users, then deletions in reverse (users, stores, slots). Within that order, a mutation that is
 * not yet valid (a slot still held by a store that the file changes later) waits for one that
 * makes it valid; what can never become valid is reported, every problem at once.
 */
import { DirectoryFileError, type FileProblem } from '../core/errors.js';
import type { DirectorySnapshot, Slot, Store, User } from './model.js';
import type { Directory } from './types.js';
import { applyChanges, planMutation, targetOf, type Mutation } from './rules.js';
import { readDirectoryFile } from './file.js';

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
      out.push([{ op: 'createStore', input: { name, slots: [...w.slots], preferredMaster: w.preferredMaster,
        currentMaster: w.currentMaster, state: w.state } }]);
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
 */
export function diffDirectory(live: DirectorySnapshot, desired: DirectorySnapshot, file = '(directory file)'): Mutation[] {
  const sim: DirectorySnapshot = structuredClone(live);
  const pending = chains(live, desired);
  const plan: Mutation[] = [];
  for (;;) {
    let progressed = false;
    for (let i = 0; i < pending.length; i++) {
      const chain = pending[i] as Mutation[];
      const head = chain[0] as Mutation;
      let changes;
      try {
        changes = planMutation(sim, head);
      } catch {
        continue; // maybe valid once a later mutation ran; retried in the next round
      }
      applyChanges(sim, changes);
      plan.push(head);
      chain.shift();
      if (chain.length === 0) pending.splice(i, 1);
      progressed = true;
      break; // restart from the highest priority: keeps creates before users before deletes
    }
    if (pending.length === 0) return plan;
    if (!progressed) {
      const problems = pending.map((chain) => {
        const head = chain[0] as Mutation;
        try {
          planMutation(sim, head);
          return { path: filePath(head), message: `${head.op}: blocked` };
        } catch (err) {
          return problemOf(head, err);
        }
      });
      throw new DirectoryFileError(file, problems);
    }
  }
}

/** Runs one mutation through the public Directory interface (so it works on any backend or cache). */
export async function runMutation(dir: Directory, m: Mutation, actor: string): Promise<void> {
  switch (m.op) {
    case 'createSlot': await dir.createSlot(m.input, actor); return;
    case 'updateSlot': await dir.updateSlot(m.input, actor); return;
    case 'deleteSlot': await dir.deleteSlot(m.name, actor); return;
    case 'setSlotState': await dir.setSlotState(m.name, m.state, actor); return;
    case 'createStore': await dir.createStore(m.input, actor); return;
    case 'updateStore': await dir.updateStore(m.input, actor); return;
    case 'deleteStore': await dir.deleteStore(m.name, actor); return;
    case 'setStoreState': await dir.setStoreState(m.name, m.state, actor); return;
    case 'failover': await dir.failover(m.store, m.options, actor); return;
    case 'createUser': await dir.createUser(m.input, actor); return;
    case 'deleteUser': await dir.deleteUser(m.name, actor); return;
    case 'setUserState': await dir.setUserState(m.name, m.state, actor); return;
    case 'beginMove': await dir.beginMove(m.name, m.toStore, actor); return;
    case 'finishMove': await dir.finishMove(m.name, actor); return;
    case 'abortMove': await dir.abortMove(m.name, actor); return;
    case 'setPasswordHash': await dir.setPasswordHash(m.name, m.hash, actor); return;
  }
}

/** One line per mutation, for `directory apply` output. Never shows a password hash. */
export function describeMutation(m: Mutation): string {
  switch (m.op) {
    case 'createSlot': case 'updateSlot': {
      const i = m.input;
      return `${m.op === 'createSlot' ? 'create' : 'update'} slot ${i.name}: machine ${i.machine} ip ${i.ip}`
        + ` lmtp ${i.lmtp ?? 24} imap ${i.imap ?? 143} pop3 ${i.pop3 ?? 110}${i.state ? ` state ${i.state}` : ''}`;
    }
    case 'deleteSlot': return `delete slot ${m.name}`;
    case 'setSlotState': return `set slot ${m.name} state ${m.state}`;
    case 'createStore': case 'updateStore': {
      const i = m.input;
      return `${m.op === 'createStore' ? 'create' : 'update'} store ${i.name}: slots ${i.slots.join(',')}`
        + ` preferredMaster ${i.preferredMaster}${i.currentMaster ? ` currentMaster ${i.currentMaster}` : ''}`;
    }
    case 'deleteStore': return `delete store ${m.name}`;
    case 'setStoreState': return `set store ${m.name} state ${m.state}`;
    case 'failover': return `fail over store ${m.store} to ${m.options.to ?? '(the up replica)'}`
      + (m.options.expectedEpoch !== undefined ? ` (expecting epoch ${m.options.expectedEpoch})` : '');
    case 'createUser': return `create user ${m.input.name} on store ${m.input.store}${m.input.state ? ` state ${m.input.state}` : ''}`;
    case 'deleteUser': return `delete user ${m.name}`;
    case 'setUserState': return `set user ${m.name} state ${m.state}`;
    case 'beginMove': return `begin moving user ${m.name} to store ${m.toStore}`;
    case 'finishMove': return `finish moving user ${m.name}`;
    case 'abortMove': return `abort moving user ${m.name}`;
    case 'setPasswordHash': return `${m.hash === null ? 'clear' : 'set'} password of user ${m.name}`;
  }
}

export interface ApplyOptions {
  actor: string;
  /** Plan and validate only. */
  dryRun?: boolean;
}

export interface ApplyResult {
  /** The planned mutations, in order. */
  mutations: Mutation[];
  /** How many were applied (0 on a dry run). */
  applied: number;
  fromVersion: number;
  toVersion: number;
}

/** A mutation failed part-way through an apply (someone else changed the directory meanwhile?). */
export class DirectoryApplyIncompleteError extends Error {
  constructor(readonly applied: number, readonly total: number, readonly failed: Mutation, options: { cause: unknown }) {
    super(`applied ${applied} of ${total} changes; "${describeMutation(failed)}" failed: ${(options.cause as Error)?.message ?? String(options.cause)}. Re-run apply to finish.`, options);
    this.name = 'DirectoryApplyIncompleteError';
  }
}

/**
 * Makes the live directory equal to `desired` (a snapshot, or a directory file path). Validates
 * the whole result first: on any problem, throws DirectoryFileError and applies nothing.
 */
export async function applyDirectory(dir: Directory, desired: DirectorySnapshot | string, options: ApplyOptions): Promise<ApplyResult> {
  const file = typeof desired === 'string' ? desired : '(directory file)';
  const want = typeof desired === 'string' ? await readDirectoryFile(desired) : desired;
  const live = await dir.snapshot();
  const mutations = diffDirectory(live, want, file);
  if (options.dryRun || mutations.length === 0) {
    return { mutations, applied: 0, fromVersion: live.version, toVersion: live.version };
  }
  let applied = 0;
  for (const m of mutations) {
    try {
      await runMutation(dir, m, options.actor);
    } catch (err) {
      throw new DirectoryApplyIncompleteError(applied, mutations.length, m, { cause: err });
    }
    applied++;
  }
  return { mutations, applied, fromVersion: live.version, toVersion: await dir.version() };
}
