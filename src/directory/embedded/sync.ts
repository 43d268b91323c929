/**
 * Keeping an embedded directory in step with the file when other processes write it (the CLI next
 * to a running `storeroute serve`): reading the file together with its identity, telling what
 * changed between two snapshots, and noticing a save within milliseconds.
 *
 * Identity: every save renames a new file into place, so the inode changes at every save; with
 * size and the nanosecond mtime it tells "someone saved" without reading the file. What changed is
 * then told by the content (the stored version and the entries), never by the mtime alone.
 */
import { watch, type FSWatcher } from 'node:fs';
import { open } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import type { ChangeEvent, DirectorySnapshot } from '../model.js';

export interface FileRead {
  /** ino:size:mtimeNs of the file as read. */
  identity: string;
  text: string;
}

/** Reads the file and its identity from one open file descriptor (so they belong together). */
export async function readWithIdentity(file: string, known: string | null): Promise<FileRead | 'unchanged' | 'missing'> {
  let fh;
  try {
    fh = await open(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'missing';
    throw err;
  }
  try {
    const st = await fh.stat({ bigint: true });
    const identity = `${st.ino}:${st.size}:${st.mtimeNs}`;
    if (identity === known) return 'unchanged';
    return { identity, text: await fh.readFile('utf8') };
  } finally {
    await fh.close();
  }
}

/**
 * Entries are flat records whose only nested values are arrays of names (a store's slots): a
 * field-by-field compare, several times cheaper than two JSON.stringify calls per entry (a reload
 * of a 100,000-user file compares them all).
 */
function sameEntry(x: unknown, y: unknown): boolean {
  if (x === y) return true;
  if (x === undefined || y === undefined) return false;
  const a = x as Record<string, unknown>;
  const b = y as Record<string, unknown>;
  let keys = 0;
  for (const k in a) {
    keys++;
    const p = a[k];
    const q = b[k];
    if (p === q) continue;
    if (!Array.isArray(p) || !Array.isArray(q) || p.length !== q.length || p.some((v, i) => v !== q[i])) return false;
  }
  for (const _ in b) keys--;
  return keys === 0;
}

/** Above this many changed entries, one "reload everything" event says it more cheaply. */
const MAX_EVENTS = 1_000;

/**
 * The ChangeEvents that turn `before` into `after` (action `reload`: the acting process's audit
 * record has the real action), or one event with target `*` when too many entries changed.
 */
export function diffEvents(before: DirectorySnapshot, after: DirectorySnapshot): ChangeEvent[] {
  const events: ChangeEvent[] = [];
  const tables = [['slot', before.slots, after.slots], ['store', before.stores, after.stores],
    ['user', before.users, after.users]] as const;
  for (const [kind, a, b] of tables) {
    const ra = a as Record<string, unknown>;
    const rb = b as Record<string, unknown>;
    for (const name of new Set([...Object.keys(ra), ...Object.keys(rb)])) {
      const x = ra[name];
      const y = rb[name];
      if (sameEntry(x, y)) continue;
      events.push({ version: after.version, action: 'reload', target: `${kind}:${name}` });
      if (events.length > MAX_EVENTS) return [{ version: after.version, action: 'reload', target: '*' }];
    }
  }
  return events;
}

export interface FileWatch {
  close(): void;
}

/**
 * Calls `onChange` when `file` may have been replaced: fs.watch on its folder (a save is a rename
 * into the folder), filtered to the file's name, plus a stat poll every `pollMs` because fs.watch
 * can miss events (some filesystems, a watcher that failed). `onChange` must be cheap to repeat.
 */
export function watchFile(file: string, pollMs: number, onChange: () => void, onError: (err: unknown) => void,
  useFsWatch = true): FileWatch {
  const name = basename(file);
  let watcher: FSWatcher | null = null;
  if (useFsWatch) try {
    watcher = watch(dirname(file), { persistent: false }, (_type, changed) => {
      if (changed === null || changed === name) onChange();
    });
    watcher.on('error', (err) => {
      onError(err);
      watcher?.close();
      watcher = null; // the poll carries on alone
    });
  } catch (err) {
    onError(err);
  }
  const poll = setInterval(onChange, pollMs);
  poll.unref();
  return {
    close() {
      clearInterval(poll);
      watcher?.close();
      watcher = null;
    },
  };
}
