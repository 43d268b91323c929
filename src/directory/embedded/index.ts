/**
 * The embedded backend: the whole directory in this process's memory, persisted to one directory
 * file (JSON, or YAML when the name ends in .yaml/.yml) after every change, before the change is
 * acknowledged or visible to readers. Reads never wait for mutations. A change is one mutation or
 * a whole `directory apply` (commit): either way one save, and one swap of the in-memory view, so
 * readers see before or after.
 *
 * Several processes may share the file (a running `storeroute serve` and a CLI `store failover`):
 * - every change holds the file lock (./lock.ts) from reading the state to saving it: it re-reads
 *   the file when another process saved since this one last read or wrote it, applies the rules
 *   to that fresh state, saves atomically and appends its audit records, then releases;
 * - a running process notices another's save within milliseconds (./sync.ts: fs.watch plus a
 *   stat poll), reloads, and emits a ChangeEvent for every entry that changed, so the read cache
 *   drops it and no lookup is answered from the state before that save.
 *
 * A file that vanished, is empty, does not parse, or suddenly holds no users or no stores (while
 * the last good view had some, and it is no newer save) is refused (./health.ts): lookups keep the
 * last good view, readiness turns false, and changes are refused with DirectoryUnavailableError
 * naming the file. Refused rather than re-created from memory: a vanished file may be an unmounted
 * volume or a file moved on purpose, and writing our view to the path would hide that; the
 * operator restores the file (or `directory apply`s the layout), and the next reload recovers.
 *
 * Beside the file: `<file>.history.jsonl` (the audit history, ./persist.ts) and `<file>.status/`
 * (status documents, ./status.ts: written without the lock, never touching the file).
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { stringify } from 'yaml';
import { DirectoryConflictError, DirectoryFileError, DirectoryUnavailableError } from '../../core/errors.js';
import type { Observability } from '../../core/deps.js';
import type { AuditEvent, AuditRecord, ChangeEvent, DirectorySnapshot, Route, Slot, Store, Topology, User } from '../model.js';
import type { CommitPlan, CommitResult, Readiness } from '../types.js';
import { Listeners, MutatingDirectory, type Backend, type FeedEvent } from '../backend.js';
import { parseDirectoryText, readDirectoryFile, toFileObject } from '../file.js';
import { canonicalUser, checkActor, routeFrom, targetOf, type Mutation } from '../rules.js';
import { buildChangeSet, type ChangeSet } from '../changeset.js';
import { emptiedWhy, FileHealth, unparsable, type FileProblemState } from './health.js';
import { HistoryFile, removeStaleTemps, writeFileAtomic } from './persist.js';
import { FileLock } from './lock.js';
import { StatusFolder } from './status.js';
import { checkStatusKind, eventBody, statusText } from '../status.js';
import { diffEvents, readWithIdentity, watchFile, type FileWatch } from './sync.js';

/** How long a mutation waits for another process's lock before answering DirectoryUnavailableError. */
const LOCK_WAIT_MS = 5_000;
/** The stat poll behind fs.watch: the longest another process's save can go unnoticed. */
const POLL_MS = 1_000;

export interface EmbeddedOptions {
  file: string;
  seed?: string | undefined;
  historyLimit: number;
  /** Tests only: a shorter lock wait than LOCK_WAIT_MS. */
  lockWaitMs?: number;
  /** Tests only: another poll interval than POLL_MS. */
  pollMs?: number;
  /** Tests only: false turns fs.watch off, leaving the poll alone. */
  fsWatch?: boolean;
}

function entryOf(snap: DirectorySnapshot, target: string): Slot | Store | User | null {
  const [kind, name = ''] = target.split(/:(.*)/s);
  const table = kind === 'slot' ? snap.slots : kind === 'store' ? snap.stores : snap.users;
  return (table as Record<string, Slot | Store | User>)[name] ?? null;
}

/** Runs async sections one at a time (a promise chain); an error reaches its caller only. */
class Serial {
  #tail: Promise<unknown> = Promise.resolve();
  run<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(fn);
    this.#tail = run.catch(() => undefined);
    return run;
  }
}

export class EmbeddedDirectory extends MutatingDirectory implements Backend {
  readonly kind = 'embedded' as const;
  readonly feedLive = true;
  #snap: DirectorySnapshot;
  /** Identity (ino:size:mtime) of the file as this process last read or wrote it. */
  #identity: string | null;
  /** The identity of a refused file, so it is not parsed again until it changes. */
  #badIdentity: string | null = null;
  readonly #health: FileHealth;
  #history: AuditRecord[];
  /** The directory version the in-memory history is complete up to. */
  #historyVersion: number;
  readonly #historyFile: HistoryFile;
  readonly #lock: FileLock;
  /** This process's mutations, one at a time (they would only queue on the file lock anyway). */
  readonly #mutations = new Serial();
  /** Reloads and mutation commits: each changes #snap from a known starting point. */
  readonly #state = new Serial();
  readonly #changes: Listeners<ChangeEvent>;
  readonly #feed: Listeners<FeedEvent>;
  readonly #status: StatusFolder;
  #watch: FileWatch | null = null;
  #refreshing: Promise<void> | null = null;
  #refreshAgain = false;
  #closed = false;

  private constructor(private readonly options: EmbeddedOptions, private readonly obs: Observability,
    snap: DirectorySnapshot, identity: string | null, history: AuditRecord[], historyFile: HistoryFile, lock: FileLock) {
    super();
    this.#snap = snap;
    this.#identity = identity;
    this.#history = history;
    this.#historyVersion = snap.version;
    this.#historyFile = historyFile;
    this.#lock = lock;
    const onError = (err: unknown) => obs.logger.error({ err }, 'directory_listener_failed');
    this.#changes = new Listeners(onError);
    this.#feed = new Listeners(onError);
    this.#health = new FileHealth(options.file, obs);
    this.#status = new StatusFolder(options.file, (file, err) =>
      obs.logger.warn({ file, err: (err as Error).message }, 'directory_status_unreadable'));
  }

  /**
   * Loads `file` (or seeds it from `seed` when missing) under the lock, removes temp files a crash
   * left behind, and starts watching the file for other processes' saves.
   */
  static async open(options: EmbeddedOptions, obs: Observability): Promise<EmbeddedDirectory> {
    const { file } = options;
    const lock = new FileLock(file);
    let release: () => Promise<void>;
    try {
      await mkdir(dirname(file), { recursive: true });
      release = await lock.acquire(options.lockWaitMs ?? LOCK_WAIT_MS, (owner, why) =>
        obs.logger.warn({ file, owner, why }, 'directory_stale_lock_broken'));
    } catch (err) {
      // A folder this user may read but not write (an operator's `store list` on root's files):
      // read without the lock (saves are atomic renames, so the file is whole); mutations will
      // fail, naming the lock file. Anything else, or no file to read, stops here.
      const code = ((err as Error).cause as NodeJS.ErrnoException | undefined)?.code ?? (err as NodeJS.ErrnoException).code;
      if (!['EACCES', 'EPERM', 'EROFS'].includes(code ?? '') || !existsSync(file)) throw err;
      obs.logger.debug({ file, code }, 'directory_opened_read_only');
      release = async () => undefined;
    }
    let dir: EmbeddedDirectory;
    let created = false;
    try {
      // Temp files are only written under the lock: any found now belong to a process that died.
      // The history file is compacted through a temp file of its own, so it leaves strays too.
      const stale = [
        ...await removeStaleTemps(file).catch(() => []),
        ...await removeStaleTemps(`${file}.history.jsonl`).catch(() => []),
      ];
      if (stale.length > 0) obs.logger.warn({ file, stale }, 'directory_stale_temp_removed');
      let read;
      try {
        read = await readWithIdentity(file, null);
      } catch (err) {
        throw new DirectoryFileError(file, [{ path: '(file)', message: `cannot read: ${(err as Error).message}` }]);
      }
      let snap: DirectorySnapshot;
      let identity: string | null = null;
      if (typeof read === 'object') {
        snap = parseDirectoryText(read.text, file);
        identity = read.identity;
      } else {
        snap = options.seed ? await readDirectoryFile(options.seed) : { version: 0, slots: {}, stores: {}, users: {} };
        created = true;
      }
      const historyFile = new HistoryFile(`${file}.history.jsonl`, options.historyLimit);
      const history = await historyFile.load();
      dir = new EmbeddedDirectory(options, obs, snap, identity, history, historyFile, lock);
      // Write it at once: a folder we cannot write to must stop start-up, not the first failover.
      if (created) await dir.#save(snap);
    } finally {
      await release();
    }
    const snap = dir.#snap;
    obs.logger.info({ file, seed: created ? options.seed : undefined, version: snap.version,
      slots: Object.keys(snap.slots).length, stores: Object.keys(snap.stores).length,
      users: Object.keys(snap.users).length }, 'directory_loaded');
    dir.#watch = watchFile(file, options.pollMs ?? POLL_MS, () => dir.#scheduleRefresh(),
      (err) => obs.logger.warn({ err, file }, 'directory_watch_failed'), options.fsWatch ?? true);
    return dir;
  }

  #serialize(snap: DirectorySnapshot): string {
    const obj = toFileObject(snap);
    return /\.ya?ml$/i.test(this.options.file) ? stringify(obj) : JSON.stringify(obj, null, 1) + '\n';
  }

  /** Saves atomically and records the new file's identity. Call only while holding the lock. */
  async #save(snap: DirectorySnapshot): Promise<void> {
    await writeFileAtomic(this.options.file, this.#serialize(snap));
    const read = await readWithIdentity(this.options.file, null);
    this.#identity = typeof read === 'object' ? read.identity : null;
  }

  /**
   * Adopts the file's state when another process saved since we last read or wrote it; emits a
   * ChangeEvent for every entry that differs. Runs inside #state. A file that is not the truth
   * (see the file comment) is refused: DirectoryUnavailableError, and the view stays as it was.
   */
  async #reload(): Promise<void> {
    const file = this.options.file;
    let read;
    try {
      // While refused, compare with the refused file, not the last good one: the good file moved
      // back (same inode, size and mtime) is a change from the refused state.
      read = await readWithIdentity(file, this.#health.problem ? this.#badIdentity : this.#identity);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'error';
      this.#badIdentity = null;
      return this.#refuse({ kind: 'unreadable', why: `cannot be read: ${(err as Error).message}`, key: `unreadable:${code}` }, err);
    }
    if (read === 'unchanged') {
      const problem = this.#health.problem;
      return problem ? this.#refuse(problem) : undefined;
    }
    if (read === 'missing') {
      this.#badIdentity = null;
      return this.#refuse({ kind: 'missing', why: 'is missing', key: 'missing' });
    }
    let snap: DirectorySnapshot;
    try {
      snap = parseDirectoryText(read.text, file);
    } catch (err) {
      this.#badIdentity = read.identity;
      return this.#refuse(unparsable(read.text, read.identity, err), err);
    }
    const emptied = emptiedWhy(this.#snap, snap);
    if (emptied) {
      this.#badIdentity = read.identity;
      return this.#refuse({ kind: 'emptied', why: emptied, key: `emptied:${read.identity}` });
    }
    const before = this.#snap;
    this.#snap = snap;
    this.#identity = read.identity;
    this.#badIdentity = null;
    this.#health.ok(snap.version);
    const events = diffEvents(before, snap);
    if (events.length > 0) {
      this.obs.logger.info({ file, from: before.version, to: snap.version, changed: events.length }, 'directory_reloaded');
    }
    for (const event of events) {
      this.#feed.emit({ type: 'change', event });
      this.#changes.emit(event);
    }
  }

  #refuse(state: FileProblemState, err?: unknown): never {
    this.#health.broken(state, this.#snap.version, err);
    throw new DirectoryUnavailableError(`directory file ${this.options.file} ${state.why}: serving the last good view `
      + `(version ${this.#snap.version}) and refusing changes until the file is restored`, { cause: err });
  }

  /** fs.watch / poll: reload now; a call during a reload makes it run once more (coalesced). */
  #scheduleRefresh(): void {
    if (this.#closed) return;
    if (this.#refreshing) {
      this.#refreshAgain = true;
      return;
    }
    this.#refreshing = (async () => {
      do {
        this.#refreshAgain = false;
        await this.#state.run(() => this.#reload()).catch(() => undefined); // logged by #health
      } while (this.#refreshAgain && !this.#closed);
    })().finally(() => { this.#refreshing = null; });
  }

  /** Takes the cross-process lock around `fn`. */
  async #locked<T>(fn: () => Promise<T>): Promise<T> {
    const release = await this.#lock.acquire(this.options.lockWaitMs ?? LOCK_WAIT_MS, (owner, why) =>
      this.obs.logger.warn({ file: this.options.file, owner, why }, 'directory_stale_lock_broken'));
    try {
      return await fn();
    } finally {
      await release();
    }
  }

  /** Under the lock: the history as other processes left it, when they mutated since we last looked. */
  async #catchUpHistory(): Promise<void> {
    // Another process's events append without a new version: the file itself tells.
    if (this.#historyVersion === this.#snap.version && !(await this.#historyFile.changed())) return;
    this.#history = await this.#historyFile.load();
    this.#historyVersion = this.#snap.version;
  }

  protected mutate(m: Mutation, actor: string): Promise<Slot | Store | User | null> {
    return this.#mutations.run(async () => entryOf((await this.#change([m], actor)).next, targetOf(m)));
  }

  commit(plan: CommitPlan, actor: string): Promise<CommitResult> {
    return this.#mutations.run(async () => {
      const set = await this.#change(plan.mutations, actor, plan.base.version);
      return { fromVersion: set.fromVersion, toVersion: set.next.version };
    });
  }

  /** One change (a mutation, or a whole plan): under the lock, on the fresh file state, one save. */
  async #change(mutations: Mutation[], actor: string, expectedVersion?: number): Promise<ChangeSet> {
    if (this.#closed) throw new DirectoryUnavailableError('directory is closed');
    checkActor(actor);
    return this.#locked(() => this.#state.run(async () => {
      await this.#reload(); // DirectoryUnavailableError for a refused file
      const from = this.#snap.version;
      if (expectedVersion !== undefined && from !== expectedVersion) {
        throw new DirectoryConflictError(`the directory is at version ${from}, the plan was made at version ${expectedVersion}`,
          { expected: expectedVersion, actual: from });
      }
      const set = buildChangeSet(this.#snap, mutations, actor);
      if (set.records.length === 0) return set;
      const action = mutations.length === 1 ? (mutations[0] as Mutation).op : 'commit';
      try {
        await this.#catchUpHistory();
        await this.#save(set.next);
      } catch (err) {
        this.obs.logger.error({ err, file: this.options.file, action, changes: set.records.length }, 'directory_save_failed');
        throw new DirectoryUnavailableError(`cannot save directory file ${this.options.file}: ${(err as Error).message}`, { cause: err });
      }
      this.#snap = set.next;
      const limit = this.options.historyLimit;
      this.#history = [...set.records.slice(-limit).reverse(), ...this.#history].slice(0, limit);
      this.#historyVersion = set.next.version;
      try {
        await this.#historyFile.append(set.records, () => this.#history);
      } catch (err) {
        // The change itself is saved and in force; only its audit lines are lost. Say so loudly.
        this.obs.logger.error({ err, version: set.next.version, action }, 'directory_history_save_failed');
      }
      for (const event of set.events) {
        this.#feed.emit({ type: 'change', event });
        this.#changes.emit(event);
      }
      return set;
    }));
  }

  async resolve(userName: string): Promise<Route | null> {
    const snap = this.#snap;
    const r = routeFrom(snap, canonicalUser(userName));
    return r ? { ...r, version: snap.version } : null;
  }
  async getUser(name: string): Promise<User | null> { return this.#snap.users[canonicalUser(name)] ?? null; }
  async getStore(name: string): Promise<Store | null> { return this.#snap.stores[name] ?? null; }
  async getSlot(name: string): Promise<Slot | null> { return this.#snap.slots[name] ?? null; }
  async snapshot(): Promise<DirectorySnapshot> { return structuredClone(this.#snap); }
  async version(): Promise<number> { return this.#snap.version; }
  async topology(): Promise<Topology> {
    const snap = this.#snap;
    return { version: snap.version, slots: structuredClone(snap.slots), stores: structuredClone(snap.stores) };
  }

  /** Newest first; includes other processes' records (re-read under the lock when they wrote some). */
  async history(limit = 100): Promise<AuditRecord[]> {
    // (A history file that cannot even be stat'ed cannot be read either: keep what we have.)
    const behind = this.#historyVersion !== this.#snap.version || await this.#historyFile.changed().catch(() => false);
    if (behind && !this.#closed) {
      // Another process saved or recorded; its audit lines are appended under its lock, so read under ours.
      await this.#locked(() => this.#state.run(async () => {
        await this.#reload().catch(() => undefined); // a broken file is logged by #reload; history is separate
        await this.#catchUpHistory();
      }));
    }
    return this.#history.slice(0, Math.max(0, limit));
  }

  /**
   * Under the lock, through the history file, at the version of the file as it is now (or of the
   * last good view while the file is broken: an agent's repair happened whatever the file says).
   */
  async recordEvent(event: AuditEvent): Promise<AuditRecord> {
    const body = eventBody(event);
    if (this.#closed) throw new DirectoryUnavailableError('directory is closed');
    return this.#mutations.run(() => this.#locked(() => this.#state.run(async () => {
      await this.#reload().catch(() => undefined); // a broken file is logged by #reload
      const record: AuditRecord = { version: this.#snap.version, at: new Date().toISOString(), ...body };
      try {
        await this.#catchUpHistory();
        const next = [record, ...this.#history].slice(0, this.options.historyLimit);
        await this.#historyFile.append([record], () => next);
        this.#history = next;
      } catch (err) {
        this.obs.logger.error({ err, action: record.action, target: record.target }, 'directory_history_save_failed');
        throw new DirectoryUnavailableError(`cannot append to ${this.#historyFile.file}: ${(err as Error).message}`, { cause: err });
      }
      return record;
    })));
  }

  async publishStatus(kind: string, name: string, doc: unknown): Promise<void> {
    const text = statusText(kind, name, doc);
    if (this.#closed) throw new DirectoryUnavailableError('directory is closed');
    try {
      await this.#status.publish(kind, name, text);
    } catch (err) {
      throw new DirectoryUnavailableError(`cannot write status file ${this.#status.fileOf(kind, name)}: ${(err as Error).message}`,
        { cause: err });
    }
  }

  async deleteStatus(kind: string, name: string): Promise<boolean> {
    statusText(kind, name, null);
    if (this.#closed) throw new DirectoryUnavailableError('directory is closed');
    try {
      return await this.#status.remove(kind, name);
    } catch (err) {
      throw new DirectoryUnavailableError(`cannot remove status file ${this.#status.fileOf(kind, name)}: ${(err as Error).message}`,
        { cause: err });
    }
  }

  async readStatus(kind: string): Promise<Record<string, unknown>> {
    checkStatusKind(kind);
    try {
      return await this.#status.read(kind);
    } catch (err) {
      throw new DirectoryUnavailableError(`cannot read status folder ${this.#status.dir}: ${(err as Error).message}`, { cause: err });
    }
  }

  onChange(listener: (event: ChangeEvent) => void): () => void { return this.#changes.add(listener); }

  /** Looks at the file now (a stat, unless it changed), so /readyz does not wait for the next poll. */
  async readiness(): Promise<Readiness> {
    if (!this.#closed) {
      this.#scheduleRefresh();
      await this.#refreshing;
    }
    const why = this.#health.describe();
    return why ? { ok: false, problems: [why] } : { ok: true, problems: [] };
  }

  watch(listener: (event: FeedEvent) => void): () => void { return this.#feed.add(listener); }

  async close(): Promise<void> {
    this.#closed = true;
    this.#watch?.close();
    this.#watch = null;
    // Let an in-flight save finish: it was promised to its caller.
    await this.#mutations.run(async () => undefined);
    await this.#refreshing;
  }
}
