/**
 * One writer per journal directory: two processes appending to the same segments would corrupt
 * each other. The lock file holds the owner's pid; a lock whose owner is gone (kill -9) is taken
 * over, so a crash never blocks the next start.
 */
import { open, readFile, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export const LOCK_FILE = 'journal.lock';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The replay lock: one replay at a time per journal, so two operators never deliver one record twice. */
export const REPLAY_LOCK_FILE = 'replay.lock';

/** Takes the lock or says who holds it. Returns the release function. */
export async function lockJournalDir(dir: string, name = LOCK_FILE): Promise<() => Promise<void>> {
  const file = join(dir, name);
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fh = await open(file, 'wx');
      await fh.writeFile(`${process.pid}\n`);
      await fh.close();
      return () => unlink(file).catch(() => undefined);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const pid = Number((await readFile(file, 'utf8').catch(() => '')).trim());
    if (Number.isInteger(pid) && pid > 0 && alive(pid)) {
      throw new Error(`${file} is held by process ${pid}`);
    }
    // Stale: its owner died. Replace it (another starter racing us loses at open('wx')).
    await writeFile(file, '').then(() => unlink(file)).catch(() => undefined);
  }
  throw new Error(`could not lock journal directory ${dir}`);
}
