/**
 * Crash-safe files for the embedded backend.
 *
 * The directory file is replaced atomically: write a temp file in the same folder, fsync it,
 * rename it over the old one, fsync the folder. A crash at any point leaves either the old or the
 * new complete file (rename is atomic on one filesystem), plus at worst a stray temp file, which
 * is never read and is removed at the next load.
 *
 * The audit history is an append-only JSON-lines file beside it (rewriting thousands of records
 * on every mutation would make `directory apply` of a large file quadratic). A torn last line
 * from a crash is skipped on load.
 */
import { open, readdir, rename, unlink, mkdir, stat } from 'node:fs/promises';
import type { BigIntStats } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import type { AuditRecord } from '../model.js';

function tempPrefix(file: string): string {
  return `.${basename(file)}.tmp-`;
}

export async function writeFileAtomic(file: string, text: string): Promise<void> {
  const dir = dirname(file);
  await mkdir(dir, { recursive: true });
  const temp = join(dir, `${tempPrefix(file)}${process.pid}-${randomBytes(6).toString('hex')}`);
  const fh = await open(temp, 'w', 0o640);
  try {
    await fh.writeFile(text, 'utf8');
    await fh.sync();
  } catch (err) {
    await fh.close();
    await unlink(temp).catch(() => undefined); // best effort: the write already failed
    throw err;
  } finally {
    await fh.close().catch(() => undefined); // already closed on the error path
  }
  await rename(temp, file);
  await fsyncDir(dir);
}

async function fsyncDir(dir: string): Promise<void> {
  const dh = await open(dir, 'r');
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
}

/**
 * Removes temp files left by a crash mid-save; returns their names (for a log line). Called
 * under the directory lock, so no writer of `file` can be alive: every temp is an orphan.
 */
export function removeStaleTemps(file: string): Promise<string[]> {
  return removeOrphanTemps(file, () => false);
}

function identityOf(st: BigIntStats): string {
  return `${st.ino}:${st.size}:${st.mtimeNs}`;
}

/**
 * For files written without a lock (status files): removes only temp files whose writer, the pid
 * in the temp name, is not running. A live writer's temp is about to be renamed into place.
 */
export async function removeOrphanTemps(file: string, alive: (pid: number) => boolean): Promise<string[]> {
  const dir = dirname(file);
  const prefix = tempPrefix(file);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return []; // no folder yet: nothing stale
  }
  const orphans = names.filter((n) => n.startsWith(prefix) && !alive(Number(n.slice(prefix.length).split('-')[0])));
  await Promise.all(orphans.map((n) => unlink(join(dir, n)).catch(() => undefined)));
  return orphans;
}

/**
 * Appends audit records to the history file; compacts it to `limit` records when it doubles.
 * Every call is made under the directory lock, except `changed()`.
 */
export class HistoryFile {
  #lines = 0;
  /**
   * ino:size:mtime as this process last loaded or wrote the file (null: it did not exist). Events
   * (recordEvent) append without changing the directory version, so the version alone cannot tell
   * a process that another one wrote here; a compaction from a stale view would drop those lines.
   */
  #identity: string | null = null;
  constructor(readonly file: string, readonly limit: number) {}

  /** Has the file been written (by another process) since this one last loaded or wrote it? */
  async changed(): Promise<boolean> {
    try {
      return identityOf(await stat(this.file, { bigint: true })) !== this.#identity;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return this.#identity !== null;
      throw err;
    }
  }

  async #remember(): Promise<void> {
    this.#identity = identityOf(await stat(this.file, { bigint: true }));
  }

  /** Newest first, at most `limit`. */
  async load(): Promise<AuditRecord[]> {
    let text: string;
    try {
      const fh = await open(this.file, 'r');
      try {
        const identity = identityOf(await fh.stat({ bigint: true }));
        text = await fh.readFile('utf8');
        this.#identity = identity;
      } finally {
        await fh.close();
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        this.#identity = null;
        return [];
      }
      throw err;
    }
    const records: AuditRecord[] = [];
    for (const line of text.split('\n')) {
      if (!line) continue;
      try {
        records.push(JSON.parse(line) as AuditRecord);
      } catch {
        continue; // a torn line from a crash mid-append: that record was never acknowledged
      }
    }
    this.#lines = records.length;
    return records.reverse().slice(0, this.limit);
  }

  /** Appends `records` (oldest first) in one write and one fsync: an apply of 100,000 changes is one append. */
  async append(records: AuditRecord[], newestFirst: () => AuditRecord[]): Promise<void> {
    if (records.length === 0) return;
    if (this.#lines + records.length >= this.limit * 2) {
      const keep = newestFirst().slice(0, this.limit).reverse();
      await writeFileAtomic(this.file, keep.map((r) => JSON.stringify(r) + '\n').join(''));
      this.#lines = keep.length;
      await this.#remember();
      return;
    }
    const fh = await open(this.file, 'a', 0o640);
    try {
      await fh.writeFile(records.map((r) => JSON.stringify(r) + '\n').join(''), 'utf8');
      await fh.sync();
      this.#identity = identityOf(await fh.stat({ bigint: true }));
    } finally {
      await fh.close();
    }
    this.#lines += records.length;
  }
}
