/**
 * The Redis backend: the directory shared by every proxy. Each mutation is one Lua script
 * (./scripts/*.lua) that checks the invariants, writes, bumps the version, audits and publishes
 * atomically. `resolve` is one read script: one round trip.
 *
 * The change feed comes from a second, subscriber connection. It re-subscribes itself (ioredis'
 * automatic re-SUBSCRIBE completes only after `ready`, and messages sent meanwhile are lost), and
 * reports `lost` on the first sign of trouble and `restored` only after the SUBSCRIBE is
 * acknowledged and the version re-read.
 *
 * A connection that dies silently (no FIN, no RST: a firewall dropping state) gives no sign at
 * all, and TCP keepalive takes minutes to notice. So every `commandTimeoutMs` a liveness check
 * reads the version V on the command connection, then PINGs the subscriber with the same
 * deadline. Every invalidation up to V was published before that PING reached Redis, so it must
 * have arrived before the PONG: no PONG in time, or a highest seen version below V, means the
 * feed is not to be trusted: `lost`, and the subscriber is dropped and reconnected.
 *
 * A `directory apply` is one change set committed by one script (./commit.ts, commit.lua): readers
 * see the directory before or after it. Whole-directory reads scan big tables in chunks
 * (./snapshot.ts) so neither an apply nor an export holds lookups up.
 *
 * Outside the layout: status documents live in one hash per kind under their own `{status}` hash
 * tag (plain HSET/HGETALL, ../status.ts), and events are appended to the history by
 * recordEvent.lua at the current version, without bumping it or publishing.
 */
import type { Redis } from 'ioredis';
import { withDeadline } from '../../core/deadline.js';
import { DirectoryUnavailableError } from '../../core/errors.js';
import type { Observability } from '../../core/deps.js';
import type { AuditEvent, AuditRecord, ChangeEvent, DirectorySnapshot, Route, Slot, Store, Topology, User } from '../model.js';
import type { CommitPlan, CommitResult, Readiness } from '../types.js';
import { Listeners, MutatingDirectory, type Backend, type FeedEvent } from '../backend.js';
import { canonicalUser, checkActor, slotFromInput, type Mutation } from '../rules.js';
import { buildChangeSet } from '../changeset.js';
import { commitChangeSet } from './commit.js';
import { readSnapshot, readTopology } from './snapshot.js';
import { checkStatusKind, eventBody, statusText } from '../status.js';
import { closeRedisClient, createRedisClient, reconnectDelay, type RedisConfig } from './client.js';
import { directoryKeys, statusKey, type DirectoryKeys } from '../../core/redis-keys.js';
import { mapRedisError } from './errors.js';
import { defineScripts, loadScriptSources, type DirectoryScripts, type MutationScript, type ScriptSources } from './scripts.js';

/** The script payload of a mutation (fields documented in each .lua file). */
function payloadOf(m: Mutation): Record<string, unknown> {
  switch (m.op) {
    case 'createSlot': case 'updateSlot':
      // node:net's exact IP syntax check; the script re-checks the essentials.
      slotFromInput(m.input);
      return { ...m.input };
    case 'createStore': case 'updateStore': case 'createUser':
      return { ...m.input };
    case 'failover':
      return { store: m.store, to: m.options.to, expectedEpoch: m.options.expectedEpoch, force: m.options.force };
    default: {
      const { op: _op, ...rest } = m;
      return rest;
    }
  }
}

/** Tests only: smaller staging thresholds, so small test directories take the big-apply path. */
export interface RedisTuning {
  patchLimit?: number;
}

export interface RedisOpenOptions extends RedisTuning {
  /**
   * A command connection the caller opened and closes (main.ts shares one with the auth throttle
   * and the heartbeat). The directory defines its scripts on it and never closes it. Without one
   * the directory opens its own and closes it in close().
   */
  client?: Redis;
}

function parseEntry<T>(json: string | null | undefined): T | null {
  return json ? (JSON.parse(json) as T) : null;
}

export class RedisDirectory extends MutatingDirectory implements Backend {
  readonly kind = 'redis' as const;
  #feedLive = false;
  #closed = false;
  #resyncing = false;
  /** Highest directory version the feed has told us about (the version read at resync, then messages). */
  #seenVersion = 0;
  #checking = false;
  #liveness: NodeJS.Timeout | null = null;
  readonly #keys: DirectoryKeys;
  readonly #scripts: DirectoryScripts;
  readonly #changes: Listeners<ChangeEvent>;
  readonly #feed: Listeners<FeedEvent>;

  private constructor(readonly client: Redis, private readonly ownsClient: boolean, private readonly sub: Redis,
    private readonly config: RedisConfig, private readonly obs: Observability, sources: ScriptSources,
    private readonly tuning: RedisTuning) {
    super();
    this.#keys = directoryKeys(config.keyPrefix);
    this.#scripts = defineScripts(client, sources);
    const onError = (err: unknown) => obs.logger.error({ err }, 'directory_listener_failed');
    this.#changes = new Listeners(onError);
    this.#feed = new Listeners(onError);
  }

  /** Connects (without failing when Redis is down: lookups answer DirectoryUnavailableError until it is up). */
  static async open(config: RedisConfig, obs: Observability, sources = loadScriptSources(),
    options: RedisOpenOptions = {}): Promise<RedisDirectory> {
    const { client: shared, ...tuning } = options;
    const client = shared ?? createRedisClient(config, obs, { role: 'directory' });
    const sub = createRedisClient(config, obs, { role: 'directory-sub', extra: { autoResubscribe: false,
      // The subscriber must not queue SUBSCRIBE behind a dead link; we re-subscribe on `ready`.
      enableOfflineQueue: false, commandTimeout: undefined } });
    const dir = new RedisDirectory(client, !shared, sub, config, obs, sources, tuning);
    dir.#wireSubscriber();
    dir.#startLiveness();
    await dir.#waitFeed(config.connectTimeoutMs);
    return dir;
  }

  get feedLive(): boolean { return this.#feedLive; }

  #lost(why: string): void {
    if (!this.#feedLive) return;
    this.#feedLive = false;
    this.obs.logger.warn({ why }, 'directory_feed_lost');
    this.#feed.emit({ type: 'lost' });
  }

  #wireSubscriber(): void {
    const lost = (why: string) => this.#lost(why);
    this.sub.on('close', () => lost('close'));
    this.sub.on('end', () => lost('end'));
    this.sub.on('error', () => lost('error'));
    this.sub.on('reconnecting', () => lost('reconnecting'));
    this.sub.on('ready', () => { void this.#resync(); });
    this.sub.on('message', (channel: string, message: string) => {
      if (channel !== this.#keys.channel) return;
      let event: ChangeEvent;
      try {
        event = JSON.parse(message) as ChangeEvent;
      } catch {
        // Not ours to understand; treat as "something changed" so nothing stale survives.
        event = { version: 0, action: 'unknown', target: '*' };
      }
      if (typeof event.version === 'number' && event.version > this.#seenVersion) this.#seenVersion = event.version;
      this.#feed.emit({ type: 'change', event });
      this.#changes.emit(event);
    });
    if (this.sub.status === 'ready') void this.#resync();
  }

  /** SUBSCRIBE (acknowledged), then re-read the version; only then is the feed live. Retries while connected. */
  async #resync(): Promise<void> {
    if (this.#resyncing) return;
    this.#resyncing = true;
    try {
      for (let attempt = 0; !this.#closed && !this.#feedLive && this.sub.status === 'ready'; attempt++) {
        try {
          await this.sub.subscribe(this.#keys.channel);
          const version = await this.version();
          if (this.sub.status !== 'ready') break; // dropped again meanwhile: wait for the next `ready`
          // Not max(): a Redis restarted without persistence starts its versions again from 0.
          this.#seenVersion = version;
          this.#feedLive = true;
          this.obs.logger.info({ version }, 'directory_feed_live');
          this.#feed.emit({ type: 'restored', version });
        } catch (err) {
          this.obs.logger.debug({ err: { message: (err as Error).message } }, 'directory_feed_resync_failed');
          await new Promise((r) => setTimeout(r, reconnectDelay(attempt)));
        }
      }
    } finally {
      this.#resyncing = false;
    }
  }

  #startLiveness(): void {
    const every = this.config.commandTimeoutMs;
    this.#liveness = setInterval(() => { void this.#checkLiveness(every); }, every);
    this.#liveness.unref();
  }

  /** One liveness check (see the file comment). On failure: `lost`, and a fresh subscriber connection. */
  async #checkLiveness(deadlineMs: number): Promise<void> {
    if (this.#checking || this.#closed || !this.#feedLive) return;
    this.#checking = true;
    let why: string | null = null;
    try {
      let version: number | null = null;
      try {
        version = await this.version();
      } catch (err) {
        // Lookups fail on their own (451). But a command connection that went silently dead
        // times out forever and never reconnects: drop it so ioredis opens a fresh one (also for
        // the auth throttle and the heartbeat when main.ts shares it: they were stuck on it too).
        if (/timed? ?out/i.test((err as Error).message) && this.client.status === 'ready') {
          this.obs.logger.warn({ err: { message: (err as Error).message } }, 'directory_command_connection_reset');
          this.client.disconnect(true);
        }
      }
      try {
        await withDeadline(this.sub.ping(), deadlineMs, 'directory subscriber PING');
      } catch (err) {
        why = `subscriber did not answer PING within ${deadlineMs} ms: ${(err as Error).message}`;
      }
      if (!why && version !== null && this.#seenVersion < version) {
        why = `an invalidation was missed (directory at version ${version}, feed at ${this.#seenVersion})`;
      }
    } finally {
      this.#checking = false;
    }
    if (why && this.#feedLive && !this.#closed) {
      this.#lost(why);
      // A silently dead socket never closes by itself: drop it; ioredis reconnects, `ready` resyncs.
      this.sub.disconnect(true);
    }
  }

  async #waitFeed(ms: number): Promise<void> {
    if (this.#feedLive) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => { off(); resolve(); }, ms);
      const off = this.#feed.add((e) => {
        if (e.type === 'restored') { clearTimeout(timer); off(); resolve(); }
      });
    });
    if (!this.#feedLive) this.obs.logger.warn({ waitedMs: ms }, 'directory_feed_not_live_at_start');
  }

  protected async mutate(m: Mutation, actor: string): Promise<Slot | Store | User | null> {
    checkActor(actor);
    const payload = JSON.stringify(payloadOf(m));
    let reply: [number, string];
    try {
      reply = await this.#scripts.mutate(m.op as MutationScript, this.#keys.mutation,
        [this.#keys.channel, actor, String(this.config.historyLimit), payload]);
    } catch (err) {
      throw mapRedisError(err, m.op);
    }
    return parseEntry(reply[1]);
  }

  async resolve(userName: string): Promise<Route | null> {
    let r: number | string;
    try {
      r = await this.#scripts.resolve(this.#keys.read, canonicalUser(userName));
    } catch (err) {
      throw mapRedisError(err, 'lookup');
    }
    if (r === 0) {
      throw new DirectoryUnavailableError('the Redis directory is empty (no version key): not initialised, wrong db or keyPrefix, or Redis lost its data');
    }
    if (r === -1) throw new DirectoryUnavailableError(`user ${JSON.stringify(userName)}: its store or master slot is missing`);
    if (typeof r !== 'string') return null;
    const [version, user, store, master] = JSON.parse(r) as [number, User, Store, Slot];
    return { version, user, store, master };
  }

  async #hget<T>(key: string, name: string): Promise<T | null> {
    try {
      return parseEntry<T>(await this.client.hget(key, name));
    } catch (err) {
      throw mapRedisError(err, 'lookup');
    }
  }

  getUser(name: string): Promise<User | null> { return this.#hget(this.#keys.users, canonicalUser(name)); }
  getStore(name: string): Promise<Store | null> { return this.#hget(this.#keys.stores, name); }
  getSlot(name: string): Promise<Slot | null> { return this.#hget(this.#keys.slots, name); }

  async snapshot(): Promise<DirectorySnapshot> {
    try {
      return await readSnapshot(this.client, this.#keys);
    } catch (err) {
      throw mapRedisError(err, 'snapshot');
    }
  }

  async topology(): Promise<Topology> {
    try {
      return await readTopology(this.client, this.#keys);
    } catch (err) {
      throw mapRedisError(err, 'topology read');
    }
  }

  async recordEvent(event: AuditEvent): Promise<AuditRecord> {
    const body = eventBody(event);
    let version: number;
    let at: number;
    try {
      [version, at] = await this.#scripts.recordEvent([this.#keys.version, this.#keys.history],
        [String(this.config.historyLimit), JSON.stringify(body)]);
    } catch (err) {
      throw mapRedisError(err, 'recordEvent');
    }
    return { version, at: new Date(at).toISOString(), ...body };
  }

  /** A plain HSET on the kind's own hash (`{status}` tag): no script, no layout key within reach. */
  async publishStatus(kind: string, name: string, doc: unknown): Promise<void> {
    const text = statusText(kind, name, doc);
    try {
      await this.client.hset(statusKey(this.config.keyPrefix, kind), name, text);
    } catch (err) {
      throw mapRedisError(err, 'status write');
    }
  }

  async deleteStatus(kind: string, name: string): Promise<boolean> {
    statusText(kind, name, null);
    try {
      return (await this.client.hdel(statusKey(this.config.keyPrefix, kind), name)) > 0;
    } catch (err) {
      throw mapRedisError(err, 'status delete');
    }
  }

  async readStatus(kind: string): Promise<Record<string, unknown>> {
    checkStatusKind(kind);
    let rows: Record<string, string>;
    try {
      rows = await this.client.hgetall(statusKey(this.config.keyPrefix, kind));
    } catch (err) {
      throw mapRedisError(err, 'status read');
    }
    const out: Record<string, unknown> = {};
    for (const [name, json] of Object.entries(rows)) {
      try {
        out[name] = JSON.parse(json) as unknown;
      } catch (err) {
        // Written by hand or by something else: one bad field must not hide the other machines.
        this.obs.logger.warn({ kind, name, err: (err as Error).message }, 'directory_status_unreadable');
      }
    }
    return out;
  }

  async commit(plan: CommitPlan, actor: string): Promise<CommitResult> {
    checkActor(actor);
    // Every rule is checked here, against the snapshot the plan was made on; the script then
    // refuses unless Redis is still at that version, so the check holds for what is written.
    const set = buildChangeSet(plan.base, plan.mutations, actor);
    if (set.records.length === 0) return { fromVersion: set.fromVersion, toVersion: set.fromVersion };
    try {
      const to = await commitChangeSet({ client: this.client, scripts: this.#scripts, keys: this.#keys,
        historyMax: this.config.historyLimit, patchLimit: this.tuning.patchLimit }, set, plan.base, this.#keys.channel);
      return { fromVersion: set.fromVersion, toVersion: to };
    } catch (err) {
      throw mapRedisError(err, 'commit');
    }
  }

  /**
   * Three cheap reads (GET, two HLEN) plus what the connections already know: never a scan, so
   * /readyz may poll it every second.
   */
  async readiness(): Promise<Readiness> {
    const problems: string[] = [];
    if (!this.#feedLive) problems.push('the invalidation feed (pub/sub) is not live: caches are bypassed and changes may go unnoticed');
    if (this.client.status !== 'ready') {
      problems.push(`Redis is unreachable (connection ${this.client.status})`);
      return { ok: false, problems };
    }
    try {
      const res = await this.client.multi().get(this.#keys.version).hlen(this.#keys.stores).hlen(this.#keys.slots).exec();
      const failed = res?.find(([e]) => e);
      if (!res || failed) throw failed?.[0] ?? new Error('transaction aborted');
      const [version, stores, slots] = res.map(([, v]) => v) as [string | null, number, number];
      if (version === null) {
        problems.push('Redis holds no directory layout (no version key: never applied, wrong db or keyPrefix, or Redis lost its data)');
      } else if (stores === 0 || slots === 0) {
        problems.push(`Redis holds no directory layout (version ${version}: ${stores} stores, ${slots} slots)`);
      }
    } catch (err) {
      problems.push(`Redis is unreachable: ${(err as Error).message}`);
    }
    return { ok: problems.length === 0, problems };
  }

  async version(): Promise<number> {
    try {
      return Number((await this.client.get(this.#keys.version)) ?? 0);
    } catch (err) {
      throw mapRedisError(err, 'version');
    }
  }

  async history(limit = 100): Promise<AuditRecord[]> {
    if (limit <= 0) return [];
    let rows: string[];
    try {
      rows = await this.client.lrange(this.#keys.history, 0, limit - 1);
    } catch (err) {
      throw mapRedisError(err, 'history');
    }
    return rows.map((row) => {
      const r = JSON.parse(row) as AuditRecord & { at: number | string };
      return { ...r, at: new Date(r.at).toISOString() };
    });
  }

  onChange(listener: (event: ChangeEvent) => void): () => void { return this.#changes.add(listener); }
  watch(listener: (event: FeedEvent) => void): () => void { return this.#feed.add(listener); }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#feedLive = false;
    if (this.#liveness) clearInterval(this.#liveness);
    await Promise.all([closeRedisClient(this.sub), this.ownsClient ? closeRedisClient(this.client) : undefined]);
  }
}
