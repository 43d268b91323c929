/**
 * Issue 11 item 1: an embedded directory file that is emptied, replaced by `{}`, stripped of its
 * users, or deleted under a running process is an accident, not the truth. The process keeps its
 * last good view (lookups still route), says so once (log line naming the file, counter, gauge),
 * turns readiness false, refuses changes, and recovers when the file is good again.
 */
import { mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/index.js';
import { createDirectory, DirectoryUnavailableError, type Directory } from '../../src/directory/index.js';
import { waitFor } from '../helpers/ports.js';
import { testLogger, testRegistry } from '../helpers/logger.js';
import { seedLayout } from './behaviour.js';

/**
 * Replaces the file in one step (temp file + rename). A plain writeFile truncates first, and the
 * watch may catch the empty file in between: a second, distinct bad state, rightly logged on its
 * own, which would make "logged once" depend on timing.
 */
async function replaceWith(file: string, text: string): Promise<void> {
  await writeFile(`${file}.accident`, text);
  await rename(`${file}.accident`, file);
}

function capturingLogger() {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({ write(chunk: Buffer, _enc, done) {
    for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
    done();
  } });
  return { logger: pino({ level: 'info' }, sink), lines };
}

async function metric(registry: ReturnType<typeof testRegistry>, name: string): Promise<number | undefined> {
  const json = await registry.getMetricsAsJSON();
  return json.find((m) => m.name === name)?.values[0]?.value as number | undefined;
}

describe('embedded directory file broken under a running process', () => {
  let tmp: string;
  let file: string;
  let dir: Directory;
  let lines: Array<Record<string, unknown>>;
  let metrics: ReturnType<typeof testRegistry>;
  let good: string;

  beforeEach(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'sr-broken-'));
    file = join(tmp, 'directory.json');
    const log = capturingLogger();
    lines = log.lines;
    metrics = testRegistry();
    // Cached, as `serve` opens it: the cache must keep answering from the last good view too.
    dir = await createDirectory(parseConfig({ directory: { embedded: { file } } }).directory, { logger: log.logger, metrics });
    await seedLayout(dir);
    good = await readFile(file, 'utf8');
  });
  afterEach(async () => {
    await dir.close();
    await rm(tmp, { recursive: true, force: true });
  });

  const broken = () => lines.filter((l) => l.msg === 'directory_file_broken');

  const accidents: Array<[string, () => Promise<void>, RegExp]> = [
    ['emptied (truncated to 0 bytes)', () => writeFile(file, ''), /is empty/],
    ['replaced by {}', () => replaceWith(file, '{}'), /does not parse \(slots: section missing/],
    ['deleted', () => rm(file), /is missing/],
    ['stripped of its users and stores (an old version, not a newer save)',
      () => replaceWith(file, JSON.stringify({ version: 3, slots: {}, stores: {}, users: {} })),
      /suddenly holds no users \(the last good view has 2\) and no stores \(the last good view has 2\)/],
  ];

  for (const [what, accident, why] of accidents) {
    it(`keeps the last good view, logs once, turns unready and refuses changes when the file is ${what}`, async () => {
      await accident();
      // Noticed by the file watch within milliseconds; before issue 11 the emptied view was
      // adopted (every user unknown) and a deleted file went unmentioned.
      await waitFor(async () => broken().length > 0 || (await dir.resolve('alice')) === null, 5_000, 'the accident to be noticed');
      // Lookups: the last good view, never "unknown user".
      expect((await dir.resolve('alice'))?.master.name).toBe('slot101');
      const ready = await dir.readiness();
      expect(ready.ok).toBe(false);
      expect(ready.problems).toHaveLength(1);
      expect(ready.problems[0]).toContain(file);
      expect(ready.problems[0]).toMatch(why);

      expect((await dir.resolve('bob@example.com'))?.store.name).toBe('store2');
      expect((await dir.snapshot()).version).toBe(8);

      // Changes are refused, naming the file; nothing recreates it from memory.
      const err = await dir.setSlotState('slot201', 'down', 'test').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DirectoryUnavailableError);
      expect((err as Error).message).toContain(file);
      expect((await dir.getSlot('slot201'))?.state).toBe('up');

      // Once per distinct bad state, however often it is looked at.
      await dir.readiness();
      await dir.readiness();
      expect(broken()).toHaveLength(1);
      expect(broken()[0]).toMatchObject({ level: 50, file, why: expect.stringMatching(why) });
      expect(await metric(metrics, 'storeroute_directory_file_broken_total')).toBe(1);
      expect(await metric(metrics, 'storeroute_directory_file_ok')).toBe(0);

      // The good file back: recovered, logged, ready, and changes work again.
      await replaceWith(file, good);
      expect(await dir.readiness()).toEqual({ ok: true, problems: [] });
      expect(lines.filter((l) => l.msg === 'directory_file_recovered')).toHaveLength(1);
      expect(await metric(metrics, 'storeroute_directory_file_ok')).toBe(1);
      expect((await dir.setSlotState('slot201', 'down', 'test')).state).toBe('down');
    });
  }

  it('notices a deleted file by itself (watch/poll), without anyone asking', async () => {
    await rm(file);
    await waitFor(() => broken().length === 1, 5_000, 'directory_file_broken to be logged');
    expect(broken()[0]?.file).toBe(file);
  });

  it('recovers when the very same file is moved back (same inode and mtime as the last good read)', async () => {
    await rename(file, `${file}.aside`);
    expect((await dir.readiness()).ok).toBe(false);
    await rename(`${file}.aside`, file);
    expect((await dir.readiness()).ok).toBe(true);
  });

  it('accepts a newer save that really deletes the last users and stores (another process, through the rules)', async () => {
    const other = await createDirectory(parseConfig({ directory: { embedded: { file } } }).directory,
      { logger: testLogger(), metrics: testRegistry() });
    try {
      await other.deleteUser('alice', 'test');
      await other.deleteUser('bob@example.com', 'test');
      await other.deleteStore('store1', 'test');
      await other.deleteStore('store2', 'test');
    } finally {
      await other.close();
    }
    await waitFor(async () => (await dir.resolve('alice')) === null, 5_000, 'the running process to adopt the save');
    expect(await dir.readiness()).toEqual({ ok: true, problems: [] });
    expect(broken()).toEqual([]);
  });
});
