/**
 * The Directory contract. Every capability (lmtp, auth, journal, cli) uses the directory only
 * through this interface, obtained from `createDirectory()` in ./index.ts.
 *
 * Errors: reads that cannot be answered throw DirectoryUnavailableError (transient, never "unknown
 * user"). Mutations throw DirectoryRuleError (invariant), DirectoryConflictError (epoch CAS lost),
 * DirectoryNotFoundError, or DirectoryUnavailableError.
 */
import type {
  AuditRecord, ChangeEvent, DirectorySnapshot, FailoverOptions, Route, Slot, SlotInput, SlotState,
  Store, StoreInput, StoreState, User, UserInput, UserState,
} from './model.js';

export interface DirectoryReader {
  /** user → store → current master, read at one version. null: the directory knows no such user. */
  resolve(userName: string): Promise<Route | null>;
  getUser(name: string): Promise<User | null>;
  getStore(name: string): Promise<Store | null>;
  getSlot(name: string): Promise<Slot | null>;
  /** The whole directory at one version (for CLI listings, export, status). */
  snapshot(): Promise<DirectorySnapshot>;
  version(): Promise<number>;
  /** Newest first. */
  history(limit?: number): Promise<AuditRecord[]>;
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
}

export interface Directory extends DirectoryReader, DirectoryWriter {
  readonly kind: 'redis' | 'embedded';
  /** Called for every mutation seen (own or other processes'). Returns an unsubscribe function. */
  onChange(listener: (event: ChangeEvent) => void): () => void;
  close(): Promise<void>;
}
