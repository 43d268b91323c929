import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EmbeddedDirectory } from '../../src/directory/embedded/index.js';
import { waitFor } from '../helpers/ports.js';
import { testLogger, testRegistry } from '../helpers/logger.js';

describe('embedded directory crash safety', () => {
  let tmp: string;
  beforeEach(async () => { tmp = await mkdtemp(join(tmpdir(), 'sr-crash-')); });
  afterEach(async () => { await rm(tmp, { recursive: true, force: true }); });

  it('a process killed -9 in a save loop leaves a complete directory file, never a torn one', async () => {
    const file = join(tmp, 'directory.json');
    for (let round = 0; round < 3; round++) {
      const child = spawn(process.execPath, ['--import', 'tsx', 'test/directory/fixtures/save-loop.ts', file],
        { stdio: ['ignore', 'pipe', 'inherit'] });
      const exited = new Promise((r) => child.once('exit', r));
      try {
        // Let it save many times, then kill it at an arbitrary moment, mid-save with high probability.
        const target = 20 + round * 7;
        await waitFor(async () => {
          const text = await readFile(file, 'utf8').catch(() => '');
          const m = /"version": (\d+)/.exec(text);
          return m && Number(m[1]) >= target;
        }, 15_000, 'the child to save');
      } finally {
        child.kill('SIGKILL');
        await exited;
      }
      const dir = await EmbeddedDirectory.open({ file, historyLimit: 10 }, { logger: testLogger(), metrics: testRegistry() });
      const snap = await dir.snapshot();
      // A complete state: exactly the users created before the last completed save.
      const users = Object.keys(snap.users).sort((a, b) => Number(a.slice(1)) - Number(b.slice(1)));
      expect(users).toEqual(Array.from({ length: snap.version - 3 }, (_, i) => `u${i + 1}`));
      expect(await readdir(tmp)).toEqual(expect.not.arrayContaining([expect.stringContaining('.tmp-')]));
      await dir.close();
      await rm(file); // the next round starts afresh (the loop always creates from u1)
      await rm(`${file}.history.jsonl`, { force: true });
    }
  }, 60_000);
});
