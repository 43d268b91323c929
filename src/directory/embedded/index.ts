/**
 * The embedded backend: the whole directory in this process's memory, persisted to one directory
 * file (JSON, or YAML when the name ends in .yaml/.yml) after every mutation, before the mutation
 * is acknowledged or visible to readers. Mutations are serialised; reads never wait for them.
 */
import { readFile } from 'node:fs/promises';
import { stringify } from 'yaml';
import { DirectoryFileError, DirectoryUnavailableError } from '../../core/errors.js';
import type { Observability } from '../../core/deps.js';
import type { AuditRecord, ChangeEvent, DirectorySnapshot, Route, Slot, Store, User } from '../model.js';
import { auditView, Listeners, MutatingDirectory, type Backend, type FeedEvent } from '../backend.js';
import { parseDirectoryText, readDirectoryFile, toFileObject } from '../file.js';
import { canonicalUser, checkActor, planMutation, routeFrom, targetOf, type Change, type Mutation } from '../rules.js';
import { HistoryFile, removeStaleTemps, writeFileAtomic } from './persist.js';

export interface EmbeddedOptions {
  file: string;
  seed?: string | undefined;
  historyLimit: number;
}

/** A new snapshot with `changes` applied; tables the changes do not touch are shared, not copied. */
function withChanges(snap: DirectorySnapshot, changes: Change[], version: number): DirectorySnapshot {
  const next: DirectorySnapshot = { version, slots: snap.slots, stores: snap.stores, users: snap.users };
  const copied = new Set<string>();
  for (const c of changes) {
    const key = c.kind === 'slot' ? 'slots' : c.kind === 'store' ? 'stores' : 'users';
    if (!copied.has(key)) {
      (next as unknown as Record<string, unknown>)[key] = { ...next[key] };
      copied.add(key);
    }
    const table = next[key] as Record<string, unknown>;
    if (c.after === null) delete table[c.name];
    else table[c.name] = c.after;
  }
  return next;
}

function entryOf(snap: DirectorySnapshot, target: string): Slot | Store | User | null {
  const [kind, name = ''] = target.split(/:(.*)/s);
  const table = kind === 'slot' ? snap.slots : kind === 'store' ? snap.stores : snap.users;
  return (table as Record<string, Slot | Store | User>)[name] ?? null;
}

export class EmbeddedDirectory extends MutatingDirectory implements Backend {
  readonly kind = 'embedded' as const;
  readonly feedLive = true;
  #snap: DirectorySnapshot;
  #history: AuditRecord[];
  #historyFile: HistoryFile;
  #queue: Promise<unknown> = Promise.resolve();
  #changes: Listeners<ChangeEvent>;
  #feed: Listeners<FeedEvent>;
  #closed = false;

  private constructor(private readonly options: EmbeddedOptions, private readonly obs: Observability,
    snap: DirectorySnapshot, history: AuditRecord[], historyFile: HistoryFile) {
    super();
    this.#snap = snap;
    this.#history = history;
    this.#historyFile = historyFile;
    const onError = (err: unknown) => obs.logger.error({ err }, 'directory_listener_failed');
    this.#changes = new Listeners(onError);
    this.#feed = new Listeners(onError);
  }

  /** Loads `file` (or seeds it from `seed` when missing) and removes temp files a crash left behind. */
  static async open(options: EmbeddedOptions, obs: Observability): Promise<EmbeddedDirectory> {
    const stale = await removeStaleTemps(options.file);
    if (stale.length > 0) obs.logger.warn({ file: options.file, stale }, 'directory_stale_temp_removed');
    let snap: DirectorySnapshot;
    let created = false;
    let text: string | null = null;
    try {
      text = await readFile(options.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new DirectoryFileError(options.file, [{ path: '(file)', message: `cannot read: ${(err as Error).message}` }]);
      }
    }
    if (text !== null) snap = parseDirectoryText(text, options.file);
    else {
      snap = options.seed ? await readDirectoryFile(options.seed) : { version: 0, slots: {}, stores: {}, users: {} };
      created = true;
    }
    const historyFile = new HistoryFile(`${options.file}.history.jsonl`, options.historyLimit);
    const history = await historyFile.load();
    const dir = new EmbeddedDirectory(options, obs, snap, history, historyFile);
    // Write it at once: a folder we cannot write to must stop start-up, not the first failover.
    if (created) await writeFileAtomic(options.file, dir.#serialize(snap));
    obs.logger.info({ file: options.file, seed: created ? options.seed : undefined, version: snap.version,
      slots: Object.keys(snap.slots).length, stores: Object.keys(snap.stores).length,
      users: Object.keys(snap.users).length }, 'directory_loaded');
    return dir;
  }

  #serialize(snap: DirectorySnapshot): string {
    const obj = toFileObject(snap);
    return /\.ya?ml$/i.test(this.options.file) ? stringify(obj) : JSON.stringify(obj, null, 1) + '\n';
  }

  protected mutate(m: Mutation, actor: string): Promise<Slot | Store | User | null> {
    // One at a time: each mutation is checked against the state the previous one left.
    const run = this.#queue.then(() => this.#mutateNow(m, actor));
    this.#queue = run.catch(() => undefined); // the caller sees the error; the queue goes on
    return run;
  }

  async #mutateNow(m: Mutation, actor: string): Promise<Slot | Store | User | null> {
    if (this.#closed) throw new DirectoryUnavailableError('directory is closed');
    checkActor(actor);
    const target = targetOf(m);
    const changes = planMutation(this.#snap, m);
    if (changes.length === 0) return entryOf(this.#snap, target);
    const next = withChanges(this.#snap, changes, this.#snap.version + 1);
    const first = changes[0] as Change;
    const record: AuditRecord = {
      version: next.version, at: new Date().toISOString(), actor, action: m.op, target,
      before: auditView(first.before), after: auditView(first.after),
    };
    try {
      await writeFileAtomic(this.options.file, this.#serialize(next));
    } catch (err) {
      this.obs.logger.error({ err, file: this.options.file, action: m.op, target }, 'directory_save_failed');
      throw new DirectoryUnavailableError(`cannot save directory file ${this.options.file}: ${(err as Error).message}`, { cause: err });
    }
    this.#snap = next;
    this.#history = [record, ...this.#history.slice(0, this.options.historyLimit - 1)];
    try {
      await this.#historyFile.append(record, () => this.#history);
    } catch (err) {
      // The change itself is saved and in force; only its audit line is lost. Say so loudly.
      this.obs.logger.error({ err, version: record.version, action: m.op, target }, 'directory_history_save_failed');
    }
    const event: ChangeEvent = { version: next.version, action: m.op, target };
    this.#feed.emit({ type: 'change', event });
    this.#changes.emit(event);
    return entryOf(next, target);
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
  async history(limit = 100): Promise<AuditRecord[]> { return this.#history.slice(0, Math.max(0, limit)); }

  onChange(listener: (event: ChangeEvent) => void): () => void { return this.#changes.add(listener); }
  watch(listener: (event: FeedEvent) => void): () => void { return this.#feed.add(listener); }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#queue; // let an in-flight save finish: it was promised to its caller
  }
}
