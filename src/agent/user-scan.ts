/**
 * The users named by a slot's pending records, read incrementally: what earlier rounds parsed of
 * a pending file is remembered, so a round reads only the records appended since. Re-reading the
 * head of every pending file every round (up to userScanBytes, 1 MiB by default, per slot) made
 * the user scan the agent's largest cost once logs grew: 64 slots at 20 KB of log each cost
 * ~55 ms of parsing per round, against ~3 ms for a bare `du -s` of the same directories. For the
 * same reason the slot's user list is kept sorted as users are added, and rebuilt only when a
 * file leaves.
 *
 * A file is known by device and inode, checked against its birth time and its first bytes: `log`
 * renamed to `log-run` by the rolling client is the same file and keeps what was read; a new file
 * that reuses a consumed file's inode is read from its start. Only complete lines are parsed
 * (Cyrus appends whole records; a line still being written waits for the next round).
 * Synchronous, like the rest of a measuring round (see procs.ts for why).
 */
import { closeSync, openSync, readSync, type Stats } from 'node:fs';
import { countRecords } from './records.js';

/** Enough of a file's start to tell it from another file that reused its inode. */
const HEAD_BYTES = 64;

interface ScannedFile {
  /** Birth time in ms (0 where the filesystem keeps none). */
  birth: number;
  /** The file's first bytes (up to HEAD_BYTES), as parsed. */
  head: Buffer;
  /** Bytes parsed: the file up to and including its last complete line read so far. */
  offset: number;
  users: Set<string>;
  unattributed: number;
}

/** One slot's scan state: one per slot and agent. A reading without one parses from scratch. */
export class UserScan {
  readonly #files = new Map<string, ScannedFile>();
  #seen = new Set<string>();
  /** Users of the files scanned in the last reading, and the same users sorted. */
  #users = new Set<string>();
  #sorted: string[] = [];

  /**
   * Parses `path` (stat'd as `st`) up to `limit` bytes, from where the last reading stopped.
   * Throws the fs error when the file cannot be opened or read.
   */
  scan(path: string, st: Stats, limit: number): void {
    const key = `${st.dev}:${st.ino}`;
    this.#seen.add(key);
    let entry = this.#files.get(key);
    const birth = st.birthtimeMs > 0 ? st.birthtimeMs : 0;
    if (entry && (entry.birth !== birth || st.size < entry.offset)) entry = this.#drop(key);
    if (entry && entry.offset >= limit) return;

    const fd = openSync(path, 'r');
    try {
      if (entry && entry.head.length > 0) {
        const head = Buffer.allocUnsafe(entry.head.length);
        const n = readSync(fd, head, 0, head.length, 0);
        if (n !== head.length || !head.equals(entry.head)) entry = this.#drop(key);
      }
      if (!entry) {
        entry = { birth, head: Buffer.alloc(0), offset: 0, users: new Set(), unattributed: 0 };
        this.#files.set(key, entry);
      }
      const chunk = Buffer.allocUnsafe(limit - entry.offset);
      const read = readSync(fd, chunk, 0, chunk.length, entry.offset);
      if (read === 0) return;
      const complete = chunk.lastIndexOf(0x0a, read - 1) + 1;
      if (complete === 0) return;
      const fileUsers = entry.users;
      const counted = countRecords(chunk.toString('latin1', 0, complete), false, {
        add: (user: string) => {
          fileUsers.add(user);
          if (!this.#users.has(user)) {
            this.#users.add(user);
            insertSorted(this.#sorted, user);
          }
        },
      });
      entry.unattributed += counted.unattributed;
      if (entry.offset === 0) entry.head = Buffer.from(chunk.subarray(0, Math.min(HEAD_BYTES, complete)));
      entry.offset += complete;
    } finally {
      closeSync(fd);
    }
  }

  /**
   * Ends a reading: files not scanned in it (consumed, or past the cap) are forgotten. Returns
   * the users named by the files that were, sorted, and their records that name no user.
   */
  endReading(): { users: string[]; unattributed: number } {
    let dropped = false;
    for (const key of this.#files.keys()) {
      if (!this.#seen.has(key)) {
        this.#files.delete(key);
        dropped = true;
      }
    }
    this.#seen = new Set();
    if (dropped) this.#rebuild();
    let unattributed = 0;
    for (const f of this.#files.values()) unattributed += f.unattributed;
    return { users: this.#sorted, unattributed };
  }

  #drop(key: string): undefined {
    this.#files.delete(key);
    this.#rebuild();
    return undefined;
  }

  #rebuild(): void {
    this.#users = new Set();
    for (const f of this.#files.values()) for (const u of f.users) this.#users.add(u);
    this.#sorted = [...this.#users].sort();
  }
}

/** Inserts `value` into the sorted array `into` (a new user among hundreds: no re-sort). */
function insertSorted(into: string[], value: string): void {
  let lo = 0;
  let hi = into.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((into[mid] as string) < value) lo = mid + 1;
    else hi = mid;
  }
  into.splice(lo, 0, value);
}
