/**
 * What the two backends share: the Directory writer methods expressed as one `mutate(Mutation)`,
 * and the change feed the read cache listens to (changes, plus "the channel dropped" and "the
 * channel is back at version N" so the cache knows when it may trust itself again).
 */
import type { AuditEvent, AuditRecord, ChangeEvent, DirectorySnapshot, FailoverOptions, Route, Slot, SlotInput, SlotState, Store,
  StoreInput, StoreState, Topology, User, UserInput, UserState } from './model.js';
import type { CommitPlan, CommitResult, Directory, Readiness } from './types.js';
import { canonicalUser, type Mutation } from './rules.js';

export type FeedEvent =
  | { type: 'change'; event: ChangeEvent }
  /** Invalidations may have been missed from now on: trust nothing cached. */
  | { type: 'lost' }
  /** Subscribed again; the directory was at `version` after the subscription took effect. */
  | { type: 'restored'; version: number };

export interface Backend extends Directory {
  /** Listens to the change feed. Returns an unsubscribe function. */
  watch(listener: (event: FeedEvent) => void): () => void;
  /** True while the feed is known to deliver every change. */
  readonly feedLive: boolean;
}

/** Passwords never appear in audit records, only whether one is set. */
export function auditView(entry: unknown): unknown {
  if (entry && typeof entry === 'object' && 'passwordHash' in entry) {
    return { ...(entry as Record<string, unknown>), passwordHash: '[set]' };
  }
  return entry ?? null;
}

/** A fan-out list of listeners; a throwing listener must not stop the others or the mutation. */
export class Listeners<T> {
  #set = new Set<(value: T) => void>();
  constructor(private readonly onError: (err: unknown) => void) {}
  add(fn: (value: T) => void): () => void {
    this.#set.add(fn);
    return () => { this.#set.delete(fn); };
  }
  emit(value: T): void {
    for (const fn of this.#set) {
      try {
        fn(value);
      } catch (err) {
        this.onError(err);
      }
    }
  }
  get size(): number { return this.#set.size; }
}

/**
 * Base class: every writer method becomes one `mutate` call returning the resulting entry
 * (or null for deletes). User names are canonicalised here, once, for both backends.
 */
export abstract class MutatingDirectory implements Directory {
  abstract readonly kind: 'redis' | 'embedded';
  protected abstract mutate(m: Mutation, actor: string): Promise<Slot | Store | User | null>;

  abstract resolve(userName: string): Promise<Route | null>;
  abstract getUser(name: string): Promise<User | null>;
  abstract getStore(name: string): Promise<Store | null>;
  abstract getSlot(name: string): Promise<Slot | null>;
  abstract snapshot(): Promise<DirectorySnapshot>;
  abstract version(): Promise<number>;
  abstract topology(): Promise<Topology>;
  abstract history(limit?: number): Promise<AuditRecord[]>;
  abstract readStatus(kind: string): Promise<Record<string, unknown>>;
  abstract recordEvent(event: AuditEvent): Promise<AuditRecord>;
  abstract publishStatus(kind: string, name: string, doc: unknown): Promise<void>;
  abstract deleteStatus(kind: string, name: string): Promise<boolean>;
  abstract onChange(listener: (event: ChangeEvent) => void): () => void;
  abstract commit(plan: CommitPlan, actor: string): Promise<CommitResult>;
  abstract readiness(): Promise<Readiness>;
  abstract close(): Promise<void>;

  /** Runs one planned mutation (used by `directory apply`). */
  run(m: Mutation, actor: string): Promise<Slot | Store | User | null> {
    return this.mutate(m, actor);
  }

  async createSlot(input: SlotInput, actor: string): Promise<Slot> {
    return (await this.mutate({ op: 'createSlot', input }, actor)) as Slot;
  }
  async updateSlot(input: SlotInput, actor: string): Promise<Slot> {
    return (await this.mutate({ op: 'updateSlot', input }, actor)) as Slot;
  }
  async deleteSlot(name: string, actor: string): Promise<void> {
    await this.mutate({ op: 'deleteSlot', name }, actor);
  }
  async setSlotState(name: string, state: SlotState, actor: string): Promise<Slot> {
    return (await this.mutate({ op: 'setSlotState', name, state }, actor)) as Slot;
  }
  async createStore(input: StoreInput, actor: string): Promise<Store> {
    return (await this.mutate({ op: 'createStore', input }, actor)) as Store;
  }
  async updateStore(input: StoreInput, actor: string): Promise<Store> {
    return (await this.mutate({ op: 'updateStore', input }, actor)) as Store;
  }
  async deleteStore(name: string, actor: string): Promise<void> {
    await this.mutate({ op: 'deleteStore', name }, actor);
  }
  async setStoreState(name: string, state: StoreState, actor: string): Promise<Store> {
    return (await this.mutate({ op: 'setStoreState', name, state }, actor)) as Store;
  }
  async failover(store: string, options: FailoverOptions, actor: string): Promise<Store> {
    return (await this.mutate({ op: 'failover', store, options: options ?? {} }, actor)) as Store;
  }
  async createUser(input: UserInput, actor: string): Promise<User> {
    return (await this.mutate({ op: 'createUser', input: { ...input, name: canonicalUser(input.name) } }, actor)) as User;
  }
  async deleteUser(name: string, actor: string): Promise<void> {
    await this.mutate({ op: 'deleteUser', name: canonicalUser(name) }, actor);
  }
  async setUserState(name: string, state: UserState, actor: string): Promise<User> {
    return (await this.mutate({ op: 'setUserState', name: canonicalUser(name), state }, actor)) as User;
  }
  async beginMove(name: string, toStore: string, actor: string): Promise<User> {
    return (await this.mutate({ op: 'beginMove', name: canonicalUser(name), toStore }, actor)) as User;
  }
  async finishMove(name: string, actor: string): Promise<User> {
    return (await this.mutate({ op: 'finishMove', name: canonicalUser(name) }, actor)) as User;
  }
  async abortMove(name: string, actor: string): Promise<User> {
    return (await this.mutate({ op: 'abortMove', name: canonicalUser(name) }, actor)) as User;
  }
  async setPasswordHash(name: string, hash: string | null, actor: string): Promise<User> {
    return (await this.mutate({ op: 'setPasswordHash', name: canonicalUser(name), hash }, actor)) as User;
  }
}
