/**
 * Status documents for the embedded backend (see ../status.ts): one small JSON file per kind and
 * name in a folder beside the directory file, `<file>.status/agent.imap1.json`, each replaced
 * atomically (temp file + rename, ./persist.ts). No lock: a (kind, name) has one writer (one agent
 * per machine), and a rename is atomic, so a reader sees the old document or the new one, never a
 * torn one. The directory file, its lock, its history and the in-memory view are never touched:
 * status can be written while the directory file is missing or broken, and changes nothing there.
 */
import { readdir, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { NAME } from '../checks.js';
import { pidAlive } from './lock.js';
import { removeOrphanTemps, writeFileAtomic } from './persist.js';

export class StatusFolder {
  readonly dir: string;
  /** Files whose orphaned temp files this process already removed (once per file is enough). */
  readonly #swept = new Set<string>();

  constructor(directoryFile: string, private readonly onUnreadable: (file: string, err: unknown) => void) {
    this.dir = `${directoryFile}.status`;
  }

  /** `kind` and `name` already checked (../status.ts): neither holds a path separator, kind no dot. */
  fileOf(kind: string, name: string): string {
    return join(this.dir, `${kind}.${name}.json`);
  }

  async publish(kind: string, name: string, text: string): Promise<void> {
    const file = this.fileOf(kind, name);
    if (!this.#swept.has(file)) {
      // A writer killed between its temp file and the rename leaves the temp behind.
      await removeOrphanTemps(file, pidAlive);
      this.#swept.add(file);
    }
    await writeFileAtomic(file, text + '\n');
  }

  /** True if there was a document to remove. */
  async remove(kind: string, name: string): Promise<boolean> {
    try {
      await unlink(this.fileOf(kind, name));
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
  }

  /** Every document of `kind` by name; none when the folder does not exist yet. */
  async read(kind: string): Promise<Record<string, unknown>> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
      throw err;
    }
    const prefix = `${kind}.`;
    const out: Record<string, unknown> = {};
    for (const entry of names.sort()) {
      // Temp files start with a dot; a name never does (NAME), so they can never be taken for one.
      if (!entry.startsWith(prefix) || !entry.endsWith('.json')) continue;
      const name = entry.slice(prefix.length, -'.json'.length);
      if (!NAME.test(name)) continue;
      const file = join(this.dir, entry);
      try {
        out[name] = JSON.parse(await readFile(file, 'utf8')) as unknown;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // removed meanwhile
        // One bad file (edited by hand, a full disk) must not hide every other machine's report.
        this.onUnreadable(file, err);
      }
    }
    return out;
  }
}
