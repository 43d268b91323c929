/**
 * Is the embedded directory file sane? A running `serve` reloads the file whenever it changes; a
 * file that vanished, is empty, does not parse, or suddenly holds no users or no stores is not
 * the truth but an accident (a truncating redirect, an `rm`, a botched edit) that would make every
 * recipient unknown. The backend keeps serving its last good view; this records why the file was
 * refused, says so once per distinct bad state (log line and counter), and answers readiness.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { DirectoryFileError } from '../../core/errors.js';
import type { Observability } from '../../core/deps.js';
import type { DirectorySnapshot } from '../model.js';

export type FileProblemKind = 'missing' | 'empty' | 'unreadable' | 'invalid' | 'emptied';

export interface FileProblemState {
  kind: FileProblemKind;
  /** Human-readable, for the log line, the error of a refused mutation, and /readyz. */
  why: string;
  /** Distinguishes two bad states of one kind (e.g. two different broken edits): logged once each. */
  key: string;
}

/** A file that does not parse (`text` as read, `identity` its ino:size:mtime). */
export function unparsable(text: string, identity: string, err: unknown): FileProblemState {
  if (text.trim() === '') return { kind: 'empty', why: 'is empty', key: `parse:${identity}` };
  const first = (err as DirectoryFileError).problems?.[0];
  return { kind: 'invalid', key: `parse:${identity}`,
    why: `does not parse (${first ? `${first.path}: ${first.message}` : (err as Error).message})` };
}

/**
 * Why a parsed file that lost every user or every store is an accident, not a change (null: it is
 * not): every save by a storeroute process (this one or another) raises the version, so a real
 * "delete the last user" is newer than the view we hold; `{}`, an old backup or a hand edit is not.
 */
export function emptiedWhy(had: DirectorySnapshot, next: DirectorySnapshot): string | null {
  if (next.version > had.version) return null;
  const lost: string[] = [];
  for (const kind of ['users', 'stores'] as const) {
    const n = Object.keys(had[kind]).length;
    if (n > 0 && Object.keys(next[kind]).length === 0) lost.push(`no ${kind} (the last good view has ${n})`);
  }
  return lost.length === 0 ? null
    : `suddenly holds ${lost.join(' and ')} and is no newer save (version ${next.version}, last good ${had.version})`;
}

/** Registers a metric, replacing one of the same name (a second directory opened on one registry). */
function replaceMetric(registry: Registry, name: string): void {
  if (registry.getSingleMetric(name)) registry.removeSingleMetric(name);
}

export class FileHealth {
  #problem: FileProblemState | null = null;
  #broken = 0;

  constructor(private readonly file: string, private readonly obs: Observability) {
    const read = () => this;
    replaceMetric(obs.metrics, 'storeroute_directory_file_ok');
    new Gauge({
      name: 'storeroute_directory_file_ok',
      help: 'Embedded directory: 1 while the directory file is sane, 0 while it is refused and the last good view is served',
      registers: [obs.metrics],
      collect() { this.set(read().problem ? 0 : 1); },
    });
    replaceMetric(obs.metrics, 'storeroute_directory_file_broken_total');
    new Counter({
      name: 'storeroute_directory_file_broken_total',
      help: 'Embedded directory: times the directory file was found missing, empty, unparsable or emptied',
      registers: [obs.metrics],
      collect() {
        this.reset();
        this.inc(read().brokenCount);
      },
    });
  }

  get problem(): FileProblemState | null { return this.#problem; }
  get brokenCount(): number { return this.#broken; }

  /** The file was refused; `keptVersion` is the version still served. Logged and counted once per distinct state. */
  broken(state: FileProblemState, keptVersion: number, err?: unknown): void {
    if (this.#problem?.key === state.key) return;
    this.#problem = state;
    this.#broken++;
    this.obs.logger.error({ file: this.file, kind: state.kind, why: state.why, keptVersion,
      ...(err ? { err } : {}) }, 'directory_file_broken');
  }

  /** The file is sane (again). */
  ok(version: number): void {
    if (!this.#problem) return;
    this.obs.logger.info({ file: this.file, was: this.#problem.kind, version }, 'directory_file_recovered');
    this.#problem = null;
  }

  /** The line for /readyz and for refused mutations. */
  describe(): string | null {
    return this.#problem ? `directory file ${this.file} ${this.#problem.why}` : null;
  }
}
