/**
 * The read cache in front of a backend: `resolve` answers from memory, including "no such user"
 * (negative entries), and every published mutation drops what it names. The rule that matters:
 * no process may route by an entry older than a mutation it could have missed. So:
 *
 * - while the backend's change feed is not live (subscriber closed, reconnecting, or re-subscribed
 *   but the version not yet re-read) the cache is empty and bypassed: every lookup goes to the
 *   backend, and nothing read meanwhile is kept;
 * - a lookup that was in flight while any invalidation arrived is not cached (it may predate it);
 * - a mutation made through this process drops the cache at once (read-your-writes).
 *
 * A change to a user drops that user's entry; any change to a store or slot drops everything
 * (they are rare, and many users' routes depend on each).
 */
import { Counter, type Registry } from 'prom-client';
import type { Observability } from '../core/deps.js';
import type { AuditEvent, AuditRecord, ChangeEvent, DirectorySnapshot, FailoverOptions, Route, Slot, SlotInput, SlotState, Store,
  StoreInput, StoreState, Topology, User, UserInput, UserState } from './model.js';
import type { CommitPlan, CommitResult, Directory, Readiness } from './types.js';
import type { Backend, FeedEvent } from './backend.js';
import { canonicalUser } from './rules.js';

export interface CacheOptions {
  maxEntries: number;
}

/** A counter whose value lives in a plain field (a hit costs an increment, not a metric call). */
function pulledCounter(registry: Registry, name: string, help: string, read: () => number): void {
  if (registry.getSingleMetric(name)) registry.removeSingleMetric(name);
  new Counter({
    name, help, registers: [registry],
    collect() {
      this.reset();
      this.inc(read());
    },
  });
}

/** Cached routes are shared by every caller: make accidental mutation throw instead of spreading. */
function freezeRoute(route: Route): Route {
  Object.freeze(route.user);
  Object.freeze(route.store.slots);
  Object.freeze(route.store);
  Object.freeze(route.master);
  return Object.freeze(route);
}

export class CachedDirectory implements Directory {
  readonly kind: 'redis' | 'embedded';
  #entries = new Map<string, Route | null>();
  /** Bumped by every invalidation: an in-flight lookup that started before it is not cached. */
  #generation = 0;
  #live: boolean;
  #hits = 0;
  #misses = 0;
  #errors = 0;
  readonly #unwatch: () => void;

  constructor(private readonly backend: Backend, private readonly options: CacheOptions, obs: Observability) {
    this.kind = backend.kind;
    this.#live = backend.feedLive;
    this.#unwatch = backend.watch((e) => this.#onFeed(e));
    pulledCounter(obs.metrics, 'storeroute_directory_cache_hits_total', 'Directory lookups answered from the cache', () => this.#hits);
    pulledCounter(obs.metrics, 'storeroute_directory_cache_misses_total', 'Directory lookups that went to the backend', () => this.#misses);
    pulledCounter(obs.metrics, 'storeroute_directory_lookup_errors_total', 'Directory lookups that failed (DirectoryUnavailableError)', () => this.#errors);
  }

  /** For tests and the status endpoint: is the cache currently trusted? */
  get cacheLive(): boolean { return this.#live; }
  get cacheSize(): number { return this.#entries.size; }

  #onFeed(e: FeedEvent): void {
    this.#generation++;
    if (e.type === 'lost') {
      this.#live = false;
      this.#entries.clear();
    } else if (e.type === 'restored') {
      this.#entries.clear();
      this.#live = true;
    } else {
      const target = e.event.target;
      if (target.startsWith('user:')) this.#entries.delete(target.slice(5));
      else this.#entries.clear();
    }
  }

  async resolve(userName: string): Promise<Route | null> {
    const name = canonicalUser(userName);
    if (this.#live) {
      const hit = this.#entries.get(name);
      if (hit !== undefined) {
        this.#hits++;
        return hit;
      }
    }
    this.#misses++;
    const generation = this.#generation;
    let route: Route | null;
    try {
      route = await this.backend.resolve(name);
    } catch (err) {
      this.#errors++;
      throw err;
    }
    if (this.#live && generation === this.#generation) {
      if (this.#entries.size >= this.options.maxEntries) {
        // Evict the oldest insertion: cheap, and a hot user is simply re-read.
        const oldest = this.#entries.keys().next();
        if (!oldest.done) this.#entries.delete(oldest.value);
      }
      this.#entries.set(name, route ? freezeRoute(route) : null);
    }
    return route;
  }

  /** Drops everything now: used after this process's own mutations, before they echo back. */
  #invalidateAll(): void {
    this.#generation++;
    this.#entries.clear();
  }

  async #mutated<T>(work: Promise<T>): Promise<T> {
    try {
      return await work;
    } finally {
      // Even a failed call may have applied (a timeout after the script ran): drop in every case.
      this.#invalidateAll();
    }
  }

  getUser(name: string): Promise<User | null> { return this.backend.getUser(name); }
  getStore(name: string): Promise<Store | null> { return this.backend.getStore(name); }
  getSlot(name: string): Promise<Slot | null> { return this.backend.getSlot(name); }
  snapshot(): Promise<DirectorySnapshot> { return this.backend.snapshot(); }
  version(): Promise<number> { return this.backend.version(); }
  topology(): Promise<Topology> { return this.backend.topology(); }
  history(limit?: number): Promise<AuditRecord[]> { return this.backend.history(limit); }
  // Status and events change no entry: nothing cached to drop.
  readStatus(kind: string): Promise<Record<string, unknown>> { return this.backend.readStatus(kind); }
  publishStatus(kind: string, name: string, doc: unknown): Promise<void> { return this.backend.publishStatus(kind, name, doc); }
  deleteStatus(kind: string, name: string): Promise<boolean> { return this.backend.deleteStatus(kind, name); }
  recordEvent(event: AuditEvent): Promise<AuditRecord> { return this.backend.recordEvent(event); }

  createSlot(input: SlotInput, actor: string): Promise<Slot> { return this.#mutated(this.backend.createSlot(input, actor)); }
  updateSlot(input: SlotInput, actor: string): Promise<Slot> { return this.#mutated(this.backend.updateSlot(input, actor)); }
  deleteSlot(name: string, actor: string): Promise<void> { return this.#mutated(this.backend.deleteSlot(name, actor)); }
  setSlotState(name: string, state: SlotState, actor: string): Promise<Slot> {
    return this.#mutated(this.backend.setSlotState(name, state, actor));
  }
  createStore(input: StoreInput, actor: string): Promise<Store> { return this.#mutated(this.backend.createStore(input, actor)); }
  updateStore(input: StoreInput, actor: string): Promise<Store> { return this.#mutated(this.backend.updateStore(input, actor)); }
  deleteStore(name: string, actor: string): Promise<void> { return this.#mutated(this.backend.deleteStore(name, actor)); }
  setStoreState(name: string, state: StoreState, actor: string): Promise<Store> {
    return this.#mutated(this.backend.setStoreState(name, state, actor));
  }
  failover(store: string, options: FailoverOptions, actor: string): Promise<Store> {
    return this.#mutated(this.backend.failover(store, options, actor));
  }
  createUser(input: UserInput, actor: string): Promise<User> { return this.#mutated(this.backend.createUser(input, actor)); }
  deleteUser(name: string, actor: string): Promise<void> { return this.#mutated(this.backend.deleteUser(name, actor)); }
  setUserState(name: string, state: UserState, actor: string): Promise<User> {
    return this.#mutated(this.backend.setUserState(name, state, actor));
  }
  beginMove(name: string, toStore: string, actor: string): Promise<User> {
    return this.#mutated(this.backend.beginMove(name, toStore, actor));
  }
  finishMove(name: string, actor: string): Promise<User> { return this.#mutated(this.backend.finishMove(name, actor)); }
  abortMove(name: string, actor: string): Promise<User> { return this.#mutated(this.backend.abortMove(name, actor)); }
  setPasswordHash(name: string, hash: string | null, actor: string): Promise<User> {
    return this.#mutated(this.backend.setPasswordHash(name, hash, actor));
  }

  commit(plan: CommitPlan, actor: string): Promise<CommitResult> { return this.#mutated(this.backend.commit(plan, actor)); }

  onChange(listener: (event: ChangeEvent) => void): () => void { return this.backend.onChange(listener); }
  readiness(): Promise<Readiness> { return this.backend.readiness(); }

  async close(): Promise<void> {
    this.#unwatch();
    this.#live = false;
    this.#entries.clear();
    await this.backend.close();
  }
}
