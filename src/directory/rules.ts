/**
 * The directory's invariants as pure functions over a snapshot. The embedded backend and
 * `directory apply` (which simulates a whole file before touching anything) run these; the Redis
 * backend runs the same rules in Lua (src/directory/redis/scripts/*.lua). Rule names are stable:
 * tests and operators match on them.
 */
import { DirectoryConflictError, DirectoryNotFoundError } from '../core/errors.js';
import {
  SLOT_STATES, STORE_STATES, USER_STATES,
  type DirectorySnapshot, type FailoverOptions, type Slot, type SlotInput, type SlotState, type Store,
  type StoreInput, type StoreState, type User, type UserInput, type UserState,
} from './model.js';
import {
  checkEnum, checkName, checkUserName, epochError, rule, slotFromInput, startEpoch, storeLayoutErrors, storeOfSlot, throwFirst,
} from './checks.js';

export { canonicalUser, checkActor, checkName, checkUserName, slotFromInput } from './checks.js';

/** One mutation as data: what `directory apply` plans and what the backends execute. */
export type Mutation =
  | { op: 'createSlot'; input: SlotInput }
  | { op: 'updateSlot'; input: SlotInput }
  | { op: 'deleteSlot'; name: string }
  | { op: 'setSlotState'; name: string; state: SlotState }
  | { op: 'createStore'; input: StoreInput }
  | { op: 'updateStore'; input: StoreInput }
  | { op: 'deleteStore'; name: string }
  | { op: 'setStoreState'; name: string; state: StoreState }
  | { op: 'failover'; store: string; options: FailoverOptions }
  | { op: 'createUser'; input: UserInput }
  | { op: 'deleteUser'; name: string }
  | { op: 'setUserState'; name: string; state: UserState }
  | { op: 'beginMove'; name: string; toStore: string }
  | { op: 'finishMove'; name: string }
  | { op: 'abortMove'; name: string }
  | { op: 'setPasswordHash'; name: string; hash: string | null };

export type EntryKind = 'slot' | 'store' | 'user';

/** The effect of one mutation: the entry it changed, before and after (null: absent). */
export interface Change {
  kind: EntryKind;
  name: string;
  before: Slot | Store | User | null;
  after: Slot | Store | User | null;
}

const MAX_HASH = 1024;

/** Throws the first rule a store layout breaks. */
function checkStoreLayout(snap: DirectorySnapshot, store: Store, slotOverride?: Slot): void {
  throwFirst(storeLayoutErrors(snap, store, slotOverride
    ? (n) => (n === slotOverride.name ? slotOverride : snap.slots[n]) : undefined));
}

function need<T>(value: T | undefined, kind: EntryKind, name: string): T {
  if (value === undefined) throw new DirectoryNotFoundError(kind, name);
  return value;
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * Checks `m` against `snap` and returns its effect, without changing `snap`. An empty list means
 * the mutation changes nothing (a retried call): no version bump, no audit record.
 * Throws DirectoryRuleError / DirectoryNotFoundError / DirectoryConflictError.
 */
export function planMutation(snap: DirectorySnapshot, m: Mutation): Change[] {
  const one = (kind: EntryKind, name: string, before: Change['before'], after: Change['after']): Change[] =>
    (sameJson(before, after) ? [] : [{ kind, name, before, after }]);
  switch (m.op) {
    case 'createSlot': {
      const slot = slotFromInput(m.input);
      if (snap.slots[slot.name]) throw rule('EXISTS', `slot ${slot.name} already exists`);
      return one('slot', slot.name, null, slot);
    }
    case 'updateSlot': {
      const before = need(snap.slots[m.input.name], 'slot', m.input.name);
      const after = slotFromInput(m.input, before);
      const store = storeOfSlot(snap, after.name);
      if (store) checkStoreLayout(snap, store, after);
      return one('slot', after.name, before, after);
    }
    case 'deleteSlot': {
      const before = need(snap.slots[m.name], 'slot', m.name);
      const store = storeOfSlot(snap, m.name);
      if (store) throw rule('SLOT_IN_STORE', `slot ${m.name} still belongs to store ${store.name}; remove it from the store first`);
      return one('slot', m.name, before, null);
    }
    case 'setSlotState': {
      const before = need(snap.slots[m.name], 'slot', m.name);
      return one('slot', m.name, before, { ...before, state: checkEnum(`slot ${m.name}: state`, SLOT_STATES, m.state) });
    }
    case 'createStore': {
      const name = checkName('store', m.input.name);
      if (snap.stores[name]) throw rule('EXISTS', `store ${name} already exists`);
      const badEpoch = epochError(name, m.input.epoch);
      if (badEpoch) throw badEpoch;
      const store: Store = {
        name,
        slots: [...(m.input.slots ?? [])],
        preferredMaster: m.input.preferredMaster,
        currentMaster: m.input.currentMaster ?? m.input.preferredMaster,
        state: checkEnum(`store ${name}: state`, STORE_STATES, m.input.state ?? 'active'),
        epoch: startEpoch(snap, name, m.input.epoch),
      };
      checkStoreLayout(snap, store);
      return one('store', name, null, store);
    }
    case 'updateStore': {
      const before = need(snap.stores[m.input.name], 'store', m.input.name);
      if (m.input.currentMaster !== undefined && m.input.currentMaster !== before.currentMaster) {
        throw rule('USE_FAILOVER', `store ${before.name}: the current master changes only by failover`);
      }
      const after: Store = {
        ...before,
        slots: [...(m.input.slots ?? [])],
        preferredMaster: m.input.preferredMaster,
        state: checkEnum(`store ${before.name}: state`, STORE_STATES, m.input.state ?? before.state),
      };
      checkStoreLayout(snap, after);
      return one('store', after.name, before, after);
    }
    case 'deleteStore': {
      const before = need(snap.stores[m.name], 'store', m.name);
      const user = Object.values(snap.users).find((u) => u.store === m.name || u.movingTo === m.name);
      if (user) throw rule('STORE_HAS_USERS', `store ${m.name} still has users (e.g. ${user.name}); move them first`);
      return one('store', m.name, before, null);
    }
    case 'setStoreState': {
      const before = need(snap.stores[m.name], 'store', m.name);
      return one('store', m.name, before, { ...before, state: checkEnum(`store ${m.name}: state`, STORE_STATES, m.state) });
    }
    case 'failover':
      return one('store', m.store, ...planFailover(snap, m.store, m.options));
    case 'createUser': {
      const name = checkUserName(m.input.name);
      if (snap.users[name]) throw rule('EXISTS', `user ${name} already exists`);
      need(snap.stores[m.input.store], 'store', m.input.store);
      const state = checkEnum(`user ${name}: state`, USER_STATES, m.input.state ?? 'active');
      if (state === 'moving') throw rule('USE_BEGIN_MOVE', `user ${name}: state moving is set by a move, not directly`);
      return one('user', name, null, { name, store: m.input.store, state });
    }
    case 'deleteUser': {
      const before = need(snap.users[m.name], 'user', m.name);
      return one('user', m.name, before, null);
    }
    case 'setUserState': {
      const before = need(snap.users[m.name], 'user', m.name);
      const state = checkEnum(`user ${m.name}: state`, USER_STATES, m.state);
      if (state === before.state) return [];
      if (state === 'moving') throw rule('USE_BEGIN_MOVE', `user ${m.name}: state moving is set by a move, not directly`);
      if (before.state === 'moving') throw rule('USER_MOVING', `user ${m.name} is moving; finish or abort the move first`);
      return one('user', m.name, before, { ...before, state });
    }
    case 'beginMove': {
      const before = need(snap.users[m.name], 'user', m.name);
      need(snap.stores[m.toStore], 'store', m.toStore);
      if (before.state === 'moving') throw rule('USER_MOVING', `user ${m.name} is already moving to ${before.movingTo}`);
      if (before.store === m.toStore) throw rule('SAME_STORE', `user ${m.name} is already on store ${m.toStore}`);
      return one('user', m.name, before, { ...before, state: 'moving', movingTo: m.toStore });
    }
    case 'finishMove':
    case 'abortMove': {
      const before = need(snap.users[m.name], 'user', m.name);
      if (before.state !== 'moving' || !before.movingTo) throw rule('NOT_MOVING', `user ${m.name} is not moving`);
      const after: User = { ...before, state: 'active' };
      if (m.op === 'finishMove') after.store = need(snap.stores[before.movingTo], 'store', before.movingTo).name;
      delete after.movingTo;
      return one('user', m.name, before, after);
    }
    case 'setPasswordHash': {
      const before = need(snap.users[m.name], 'user', m.name);
      const after: User = { ...before };
      if (m.hash === null) delete after.passwordHash;
      else if (typeof m.hash !== 'string' || m.hash.length === 0 || m.hash.length > MAX_HASH) {
        throw rule('INVALID_HASH', `user ${m.name}: password hash must be a non-empty string of at most ${MAX_HASH} characters`);
      } else after.passwordHash = m.hash;
      return one('user', m.name, before, after);
    }
  }
}

function planFailover(snap: DirectorySnapshot, name: string, options: FailoverOptions): [Store, Store] {
  const before = need(snap.stores[name], 'store', name);
  // CAS first: of N racing failovers, the losers must hear "conflict", not a rule about the new state.
  if (options.expectedEpoch !== undefined && options.expectedEpoch !== before.epoch) {
    throw new DirectoryConflictError(
      `store ${name}: epoch is ${before.epoch}, expected ${options.expectedEpoch} (another failover happened)`,
      { expected: options.expectedEpoch, actual: before.epoch });
  }
  let to = options.to;
  if (to === undefined) {
    const eligible = before.slots.filter((s) => s !== before.currentMaster && snap.slots[s]?.state === 'up');
    if (eligible.length === 0) throw rule('NO_ELIGIBLE_TARGET', `store ${name}: no replica is up; name a target and force`);
    if (eligible.length > 1) throw rule('AMBIGUOUS_TARGET', `store ${name}: replicas ${eligible.join(', ')} are up; name the target`);
    to = eligible[0] as string;
  }
  if (!before.slots.includes(to)) throw rule('SLOT_NOT_IN_STORE', `slot ${to} is not a slot of store ${name}`);
  if (to === before.currentMaster) throw rule('ALREADY_MASTER', `slot ${to} is already the current master of store ${name}`);
  const target = need(snap.slots[to], 'slot', to);
  if (target.state !== 'up' && !options.force) {
    throw rule('TARGET_DOWN', `store ${name}: target slot ${to} is ${target.state}; use force to fail over anyway`);
  }
  return [before, { ...before, currentMaster: to, epoch: before.epoch + 1 }];
}

/**
 * Applies planned changes to `snap` in place. A deleted store leaves its epoch in retiredEpochs
 * (the highest it reached); a store created again carries the floor in its own epoch.
 */
export function applyChanges(snap: DirectorySnapshot, changes: Change[]): void {
  for (const c of changes) {
    const table = (c.kind === 'slot' ? snap.slots : c.kind === 'store' ? snap.stores : snap.users) as Record<string, unknown>;
    if (c.after === null) delete table[c.name];
    else table[c.name] = c.after;
    if (c.kind === 'store') retire(snap, c);
  }
}

/** The retiredEpochs side of a store change (copies the table, never edits a shared one). */
export function retire(snap: DirectorySnapshot, c: Change): void {
  if (c.after === null && c.before) {
    const was = snap.retiredEpochs?.[c.name] ?? -1;
    const epoch = (c.before as Store).epoch;
    if (epoch > was) snap.retiredEpochs = { ...snap.retiredEpochs, [c.name]: epoch };
  } else if (c.before === null && snap.retiredEpochs?.[c.name] !== undefined) {
    const { [c.name]: _gone, ...rest } = snap.retiredEpochs;
    snap.retiredEpochs = rest;
  }
}

/** "slot:slot101" — the audit/invalidation target of a mutation. */
export function targetOf(m: Mutation): string {
  switch (m.op) {
    case 'createSlot': case 'updateSlot': return `slot:${m.input.name}`;
    case 'deleteSlot': case 'setSlotState': return `slot:${m.name}`;
    case 'createStore': case 'updateStore': return `store:${m.input.name}`;
    case 'deleteStore': case 'setStoreState': return `store:${m.name}`;
    case 'failover': return `store:${m.store}`;
    case 'createUser': return `user:${m.input.name}`;
    default: return `user:${m.name}`;
  }
}

/** A route from a snapshot: null when the user is unknown (or, impossibly, half-defined). */
export function routeFrom(snap: DirectorySnapshot, userName: string): { user: User; store: Store; master: Slot } | null {
  const user = snap.users[userName];
  if (!user) return null;
  const store = snap.stores[user.store];
  const master = store ? snap.slots[store.currentMaster] : undefined;
  if (!store || !master) return null;
  return { user, store, master };
}
