/**
 * Status and events on the embedded backend, where they live in files: status in
 * `<file>.status/<kind>.<name>.json` (no lock, never the directory file), events in the history
 * file under the lock. A status write must work, and change nothing, while the directory file is
 * missing or broken; another process's events must survive this process's history compaction.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/index.js';
import { createDirectory, DirectoryUnavailableError, type Directory } from '../../src/directory/index.js';
import { testLogger, testRegistry } from '../helpers/logger.js';
import { deadPid } from '../agent/helpers.js';
import { seedLayout } from './behaviour.js';

describe('embedded directory: status files and events', () => {
  let tmp: string;
  let file: string;
  let dirs: Directory[];
  const open = async (historyLimit = 1_000) => {
    const d = await createDirectory(parseConfig({ directory: { embedded: { file, historyLimit } } }).directory,
      { logger: testLogger(), metrics: testRegistry() });
    dirs.push(d);
    return d;
  };

  beforeEach(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'sr-status-'));
    file = join(tmp, 'directory.json');
    dirs = [];
  });
  afterEach(async () => {
    for (const d of dirs) await d.close();
    await rm(tmp, { recursive: true, force: true });
  });

  it('writes one JSON file per kind and name beside the directory file, and nothing else', async () => {
    const dir = await open();
    await seedLayout(dir);
    const layout = await readFile(file, 'utf8');
    await dir.publishStatus('agent', 'imap1', { round: 1 });
    await dir.publishStatus('agent', 'imap1', { round: 2 });
    expect(await readdir(`${file}.status`)).toEqual(['agent.imap1.json']);
    expect(JSON.parse(await readFile(join(`${file}.status`, 'agent.imap1.json'), 'utf8'))).toEqual({ round: 2 });
    expect(await readFile(file, 'utf8')).toBe(layout);
  });

  const accidents: Array<[string, () => Promise<void>]> = [
    ['missing', () => rm(file)],
    ['broken (does not parse)', async () => {
      await writeFile(`${file}.accident`, '{ "slots": ');
      await rename(`${file}.accident`, file);
    }],
  ];
  for (const [what, accident] of accidents) {
    it(`publishes status while the directory file is ${what}, leaving the file and the layout as they are`, async () => {
      const dir = await open();
      await seedLayout(dir);
      const version = await dir.version();
      await accident();
      const broken = existsSync(file) ? await readFile(file, 'utf8') : null;
      expect((await dir.readiness()).ok).toBe(false);

      await dir.publishStatus('agent', 'imap1', { round: 1 });
      expect(await dir.readStatus('agent')).toEqual({ imap1: { round: 1 } });
      expect(existsSync(file) ? await readFile(file, 'utf8') : null).toBe(broken);
      expect((await dir.readiness()).ok).toBe(false);
      expect(await dir.version()).toBe(version);
      expect((await dir.resolve('alice'))?.master.name).toBe('slot101');
      await expect(dir.setSlotState('slot201', 'down', 'test')).rejects.toBeInstanceOf(DirectoryUnavailableError);

      // An agent's repair happened whatever the file says: the event is recorded at the last good version.
      const record = await dir.recordEvent({ actor: 'agent:imap1', action: 'flush', target: 'slot:slot101', detail: 'flushed' });
      expect(record.version).toBe(version);
      expect(existsSync(file) ? await readFile(file, 'utf8') : null).toBe(broken);
    });
  }

  it('leaves out a status file that does not parse, and reads the others', async () => {
    const dir = await open();
    await seedLayout(dir);
    await dir.publishStatus('agent', 'imap1', { round: 1 });
    await writeFile(join(`${file}.status`, 'agent.imap2.json'), '{ torn');
    await writeFile(join(`${file}.status`, 'agent.bad name.json'), '{}');
    expect(await dir.readStatus('agent')).toEqual({ imap1: { round: 1 } });
  });

  it('removes a temp file its dead writer left, and keeps a live writer\'s', async () => {
    const dir = await open();
    await seedLayout(dir);
    const folder = `${file}.status`;
    await dir.publishStatus('agent', 'imap2', { round: 0 });
    const dead = `.agent.imap1.json.tmp-${await deadPid()}-0123456789ab`;
    const live = `.agent.imap1.json.tmp-${process.pid}-0123456789ab`;
    await writeFile(join(folder, dead), '{ "half": ');
    await writeFile(join(folder, live), '{ "half": ');
    expect(await dir.readStatus('agent')).toEqual({ imap2: { round: 0 } });
    await dir.publishStatus('agent', 'imap1', { round: 1 });
    expect((await readdir(folder)).sort()).toEqual([live, 'agent.imap1.json', 'agent.imap2.json']);
  });

  it('keeps another process\'s events when this one compacts the history file', async () => {
    const agent = await open(10);
    await seedLayout(agent); // 8 records
    const serve = await open(10);
    const flip = (i: number) => serve.setSlotState('slot201', i % 2 === 0 ? 'down' : 'up', 'test');
    for (let i = 0; i < 7; i++) await flip(i); // 15 lines
    for (let i = 0; i < 4; i++) await agent.recordEvent({ actor: 'agent:imap1', action: 'flush', target: 'slot:slot101', detail: `event ${i}` });
    // 19 lines. serve's version is current, so only the history file can tell it about the events;
    // its next change reaches twice the limit and compacts the file to the 10 newest records.
    await flip(7);
    const history = await serve.history(10);
    expect(history.filter((r) => r.action === 'flush').map((r) => r.detail)).toEqual(['event 3', 'event 2', 'event 1', 'event 0']);
    expect(history).toHaveLength(10);
    const lines = (await readFile(`${file}.history.jsonl`, 'utf8')).trimEnd().split('\n');
    expect(lines).toHaveLength(10);
    expect(lines.filter((l) => l.includes('"flush"'))).toHaveLength(4);
  });
});
