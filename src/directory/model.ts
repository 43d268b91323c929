/**
 * The directory's data model: users → stores → slots. Plain data, no I/O.
 * See issue #2 for the invariants; both backends (Redis, embedded) enforce the same ones.
 */

export const SLOT_STATES = ['up', 'down', 'maintenance'] as const;
export const STORE_STATES = ['active', 'failing-over', 'down'] as const;
export const USER_STATES = ['active', 'moving', 'suspended'] as const;

export type SlotState = (typeof SLOT_STATES)[number];
export type StoreState = (typeof STORE_STATES)[number];
export type UserState = (typeof USER_STATES)[number];

/** One Cyrus instance: a meta + data partition on one machine, with its own IP. */
export interface Slot {
  name: string;
  machine: string;
  /** An IP literal (nginx's Auth-Server must be one). */
  ip: string;
  lmtp: number;
  imap: number;
  pop3: number;
  state: SlotState;
}

/** Two or more slots on different machines, replicated; one is the current master. */
export interface Store {
  name: string;
  /** All slots of the store, in the order given by the operator. */
  slots: string[];
  preferredMaster: string;
  currentMaster: string;
  state: StoreState;
  /** Increases by exactly one at every change of current master. */
  epoch: number;
}

export interface User {
  /** Canonical name: `alice` or `alice@example.com`, lower-case. */
  name: string;
  store: string;
  state: UserState;
  /** While state is `moving`: the store the user is moving to. */
  movingTo?: string;
  /** scrypt hash (`scrypt$N$r$p$salt$hash`, base64 parts) for auth_http `directory` verification. */
  passwordHash?: string;
}

/** Everything a delivery or a login needs, read consistently at one directory version. */
export interface Route {
  user: User;
  store: Store;
  /** The store's current master slot. */
  master: Slot;
  /** Directory version the route was read at. */
  version: number;
}

export interface DirectorySnapshot {
  version: number;
  slots: Record<string, Slot>;
  stores: Record<string, Store>;
  users: Record<string, User>;
  /**
   * Deleted stores: the highest epoch each reached. A store created again under the name starts
   * above it, so a compare-and-set holding an epoch of the old store can never win on the new one.
   * Absent or empty when no store was ever deleted.
   */
  retiredEpochs?: Record<string, number>;
}

/** Slots and stores at one version, without users: cheap enough to read every few seconds (the agent does). */
export type Topology = Pick<DirectorySnapshot, 'version' | 'slots' | 'stores'>;

/**
 * One audited mutation, or one recorded event. `before`/`after` are the changed entries (null when
 * created/deleted; both null for an event).
 */
export interface AuditRecord {
  /** Directory version this mutation produced (an event: the version it happened at). */
  version: number;
  /** ISO-8601 time. */
  at: string;
  /** Who: "cli:root@host", "apply:ops", "test" … */
  actor: string;
  /** Mutation name: "failover", "setSlotState", "createUser" … */
  action: string;
  /** "store:store1", "slot:slot101", "user:alice". */
  target: string;
  before: unknown;
  after: unknown;
  /** Events only (`recordEvent`): what happened, as the recorder described it. */
  detail?: unknown;
}

/**
 * Something done outside the layout that belongs in the audit history: a slot agent's repair or
 * operation. Recorded at the current version, which it does not change; no change event.
 */
export interface AuditEvent {
  /** Who: "agent:imap1" … (1-200 characters, like a mutation's actor). */
  actor: string;
  /** What: "replay-orphan-file", "flush" … (1-200 characters). */
  action: string;
  /** On what: "slot:slot101" … (1-200 characters). */
  target: string;
  /** Plain JSON. `history` shows `<result>: <detail>` when it has those two string fields. */
  detail: unknown;
}

/** Published on every mutation; every process's cache drops what `target` names. */
export interface ChangeEvent {
  version: number;
  action: string;
  target: string;
}

export interface SlotInput {
  name: string;
  machine: string;
  ip: string;
  lmtp?: number;
  imap?: number;
  pop3?: number;
  state?: SlotState;
}

export interface StoreInput {
  name: string;
  slots: string[];
  preferredMaster: string;
  /** Defaults to preferredMaster. */
  currentMaster?: string;
  state?: StoreState;
  /**
   * createStore only: the lowest epoch to start at (a restore brings the exported epochs back).
   * The store starts at the highest of this, 0, and one above the epoch a deleted store of the
   * same name reached.
   */
  epoch?: number;
}

export interface UserInput {
  name: string;
  store: string;
  state?: UserState;
}

export interface FailoverOptions {
  /** Target slot; default: the one replica that is `up` (refused when zero or several are). */
  to?: string;
  /** Compare-and-set: refuse with a conflict unless the store's epoch is this. */
  expectedEpoch?: number;
  /** Allow a target slot that is not `up`. */
  force?: boolean;
}

export const DEFAULT_PORTS = { lmtp: 24, imap: 143, pop3: 110 } as const;

/** A store is running backwards when its preferred master is not its current master. */
export function isRunningBackwards(store: Store): boolean {
  return store.preferredMaster !== store.currentMaster;
}

/** Number of current masters on each machine. */
export function mastersPerMachine(snap: DirectorySnapshot): Map<string, number> {
  const load = new Map<string, number>();
  for (const slot of Object.values(snap.slots)) load.set(slot.machine, load.get(slot.machine) ?? 0);
  for (const store of Object.values(snap.stores)) {
    const master = snap.slots[store.currentMaster];
    if (master) load.set(master.machine, (load.get(master.machine) ?? 0) + 1);
  }
  return load;
}
