/**
 * The users named by a slot's pending records, read incrementally: what earlier rounds parsed of
 * a pending file is remembered, so a round reads only the records appended since. Re-reading the
 * head of every pending file every round (up to userScanBytes, 1 MiB by default, per slot) made
 * the user scan the agent's largest cost once logs grew: 64 slots at 20 KB of log each cost
 * ~55 ms of parsing per round, against ~3 ms for a bare `du -s` of the same directories. For the
 * same reason the slot's user list is kept sorted as users are added, and rebuilt only when a
 * file leaves.
 *
 * A file is known by device and inode, checked against its birth time: `log` renamed to `log-run`
 * by the rolling client is the same file and keeps what was read. Each scanned file stays open
 * until a reading no longer sees it (consumed, or past the cap; closed by `endReading`): a round
 * then costs one read per pending file instead of open, head check, read and close (192 fewer
 * syscalls a round on 64 slots), and an inode we hold open cannot be reused by a new file, so a
 * new file under a consumed file's inode number is always a new entry, read from its start. The
 * price: a consumed file's blocks are freed one round late. Only complete lines are parsed
 * (Cyrus appends whole records; a line still being written waits for the next round).
 * Synchronous, like the rest of a measuring round (see procs.ts for why).
 */
import { closeSync, fstatSync, openSync, readSync, type Stats } from 'node:fs';
import { countRecords } from './records.js';

interface ScannedFile {
  /** Birth time in ms (0 where the filesystem keeps none). */
  birth: number;
  /** Held open from the first scan until a reading no longer sees the file. */
  fd: number;
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
    if (!entry) {
      const fd = openSync(path, 'r');
      let opened: Stats;
      try {
        opened = fstatSync(fd);
      } catch (err) {
        closeSync(fd);
        throw err;
      }
      if (opened.ino !== st.ino || opened.dev !== st.dev) {
        // Replaced between the caller's stat and our open: the next reading sees the new file.
        closeSync(fd);
        return;
      }
      entry = { birth, fd, offset: 0, users: new Set(), unattributed: 0 };
      this.#files.set(key, entry);
    }
    const chunk = Buffer.allocUnsafe(limit - entry.offset);
    const read = readSync(entry.fd, chunk, 0, chunk.length, entry.offset);
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
    entry.offset += complete;
  }

  /**
   * Ends a reading: files not scanned in it (consumed, or past the cap) are forgotten. Returns
   * the users named by the files that were, sorted, and their records that name no user.
   */
  endReading(): { users: string[]; unattributed: number } {
    let dropped = false;
    for (const [key, f] of this.#files) {
      if (!this.#seen.has(key)) {
        this.#files.delete(key);
        closeSync(f.fd);
        dropped = true;
      }
    }
    this.#seen = new Set();
    if (dropped) this.#rebuild();
    let unattributed = 0;
    for (const f of this.#files.values()) unattributed += f.unattributed;
    return { users: this.#sorted, unattributed };
  }

  /** Closes every file still held (the agent stopping; a one-off reading done). */
  close(): void {
    for (const f of this.#files.values()) closeSync(f.fd);
    this.#files.clear();
    this.#seen = new Set();
    this.#rebuild();
  }

  #drop(key: string): undefined {
    const f = this.#files.get(key);
    if (f) closeSync(f.fd);
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
