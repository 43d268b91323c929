/**
 * The Directory contract. Every capability (lmtp, auth, journal, cli) uses the directory only
 * through this interface, obtained from `createDirectory()` in ./index.ts.
 *
 * Errors: reads that cannot be answered throw DirectoryUnavailableError (transient, never "unknown
 * user"). Mutations throw DirectoryRuleError (invariant), DirectoryConflictError (epoch CAS lost),
 * DirectoryNotFoundError, or DirectoryUnavailableError.
 */
import type {
  AuditEvent, AuditRecord, ChangeEvent, DirectorySnapshot, FailoverOptions, Route, Slot, SlotInput, SlotState,
  Store, StoreInput, StoreState, Topology, User, UserInput, UserState,
} from './model.js';
import type { Mutation } from './rules.js';

/** Whether this process may take traffic, and if not, why (for /readyz). */
export interface Readiness {
  ok: boolean;
  /** One line per problem, naming the file or the Redis state; empty when ok. */
  problems: string[];
}

/** A whole change set (`directory apply`): mutations planned against `base`, applied all or none. */
export interface CommitPlan {
  /**
   * The snapshot the mutations were planned against: `snapshot()` of this same directory. The
   * Redis backend computes what it writes from it (and refuses unless Redis is still at its
   * version); the embedded backend re-runs the plan on its own state at that version.
   */
  base: DirectorySnapshot;
  mutations: Mutation[];
}

export interface CommitResult {
  fromVersion: number;
  /** fromVersion + the number of mutations that changed something (one audit record each). */
  toVersion: number;
}

export interface DirectoryReader {
  /** user → store → current master, read at one version. null: the directory knows no such user. */
  resolve(userName: string): Promise<Route | null>;
  getUser(name: string): Promise<User | null>;
  getStore(name: string): Promise<Store | null>;
  getSlot(name: string): Promise<Slot | null>;
  /** The whole directory at one version (for CLI listings, export, status). */
  snapshot(): Promise<DirectorySnapshot>;
  version(): Promise<number>;
  /** Slots and stores at one version, without the users: what a slot agent reads every round. */
  topology(): Promise<Topology>;
  /** Newest first: mutations and recorded events. */
  history(limit?: number): Promise<AuditRecord[]>;
  /**
   * Every status document of `kind`, by name (`readStatus('agent')`: machine → its last report).
   * Not part of the layout: see ./status.ts. Documents that cannot be read are left out (logged).
   */
  readStatus(kind: string): Promise<Record<string, unknown>>;
}

export interface DirectoryWriter {
  createSlot(input: SlotInput, actor: string): Promise<Slot>;
  /** Replace a slot's machine/ip/ports (not its store membership). */
  updateSlot(input: SlotInput, actor: string): Promise<Slot>;
  deleteSlot(name: string, actor: string): Promise<void>;
  setSlotState(name: string, state: SlotState, actor: string): Promise<Slot>;

  createStore(input: StoreInput, actor: string): Promise<Store>;
  /** Change a store's slot list / preferred master (current master must stay in it). */
  updateStore(input: StoreInput, actor: string): Promise<Store>;
  deleteStore(name: string, actor: string): Promise<void>;
  setStoreState(name: string, state: StoreState, actor: string): Promise<Store>;
  failover(store: string, options: FailoverOptions, actor: string): Promise<Store>;

  createUser(input: UserInput, actor: string): Promise<User>;
  deleteUser(name: string, actor: string): Promise<void>;
  setUserState(name: string, state: UserState, actor: string): Promise<User>;
  /** Phase 1 of a move: state `moving`, movingTo = toStore. Deliveries tempfail meanwhile. */
  beginMove(name: string, toStore: string, actor: string): Promise<User>;
  /** Phase 2: store = movingTo, state `active`. */
  finishMove(name: string, actor: string): Promise<User>;
  /** Undo phase 1: state `active` on the old store. */
  abortMove(name: string, actor: string): Promise<User>;
  setPasswordHash(name: string, hash: string | null, actor: string): Promise<User>;
  /**
   * Applies every mutation of `plan`, in order, as one change: a reader sees the directory before
   * or after, never in between. The versions fromVersion+1 … toVersion are taken at once, one audit
   * record each. Throws DirectoryConflictError, applying nothing, when the directory is no longer
   * at `plan.base.version` (plan again); DirectoryRuleError / DirectoryNotFoundError when a
   * mutation is invalid at that point (nothing applied either).
   */
  commit(plan: CommitPlan, actor: string): Promise<CommitResult>;
  /**
   * Appends an audit record for something done outside the layout (a slot agent's repair) at the
   * current version, which it does not change; no change event. Returns the record as stored.
   * DirectoryRuleError (INVALID_ACTOR, INVALID_EVENT) for a malformed event.
   */
  recordEvent(event: AuditEvent): Promise<AuditRecord>;
  /**
   * Replaces what `name` last published under `kind` (`publishStatus('agent', 'imap1', report)`).
   * Not audited, no version, no change event, and it cannot touch the layout: it works (and leaves
   * the file alone) while an embedded directory file is missing or broken. DirectoryRuleError for
   * a bad kind or name, a document that is not plain JSON or is above 4 MiB.
   */
  publishStatus(kind: string, name: string, doc: unknown): Promise<void>;
  /**
   * Removes what `name` published under `kind` (a decommissioned machine's last agent report, which
   * would otherwise read as a stale agent forever). True if there was one. Not audited here: the
   * caller records why (`storeroute agent forget` does).
   */
  deleteStatus(kind: string, name: string): Promise<boolean>;
}

export interface Directory extends DirectoryReader, DirectoryWriter {
  readonly kind: 'redis' | 'embedded';
  /** Called for every mutation seen (own or other processes'). Returns an unsubscribe function. */
  onChange(listener: (event: ChangeEvent) => void): () => void;
  /**
   * Cheap enough to poll every second. Not ok while lookups would be wrong or fail: Redis
   * unreachable, holding no layout, or its invalidation feed not live; an embedded file that is
   * missing, empty, unreadable or suddenly emptied (the last good view is served meanwhile).
   */
  readiness(): Promise<Readiness>;
  close(): Promise<void>;
}
