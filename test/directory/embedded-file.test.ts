import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/index.js';
import { createDirectory, DirectoryFileError, DirectoryUnavailableError } from '../../src/directory/index.js';
import { testLogger, testRegistry } from '../helpers/logger.js';
import { seedLayout } from './behaviour.js';

const obs = () => ({ logger: testLogger(), metrics: testRegistry() });

describe('embedded directory file', () => {
  let tmp: string;
  beforeEach(async () => { tmp = await mkdtemp(join(tmpdir(), 'sr-emb-')); });
  afterEach(async () => { await rm(tmp, { recursive: true, force: true }); });

  const open = (file: string, seed?: string) => createDirectory(parseConfig({
    directory: { embedded: { file, ...(seed ? { seed } : {}) } } }).directory, obs());

  it('keeps every mutation and its history across a restart', async () => {
    const file = join(tmp, 'd.json');
    const a = await open(file);
    await seedLayout(a);
    await a.failover('store1', {}, 'cli:ops');
    const before = await a.snapshot();
    const history = await a.history(5);
    await a.close();
    const b = await open(file);
    expect(await b.snapshot()).toEqual(before);
    expect(await b.history(5)).toEqual(history);
    await b.close();
  });

  it('keeps the epoch a deleted store reached across a restart: the store created again starts above it', async () => {
    const file = join(tmp, 'd.json');
    const a = await open(file);
    await seedLayout(a);
    await a.failover('store1', {}, 'test');
    await a.deleteUser('alice', 'test');
    await a.deleteStore('store1', 'test');
    await a.close();
    expect(JSON.parse(await readFile(file, 'utf8')).retiredEpochs).toEqual({ store1: 1 });
    const b = await open(file);
    expect((await b.createStore({ name: 'store1', slots: ['slot101', 'slot201'], preferredMaster: 'slot101' }, 'test')).epoch).toBe(2);
    await b.close();
    expect(JSON.parse(await readFile(file, 'utf8')).retiredEpochs).toBeUndefined();
  });

  it('seeds a missing file from the seed file and writes it at once', async () => {
    const seed = join(tmp, 'seed.yaml');
    await writeFile(seed, 'slots:\n  s1: { machine: m1, ip: 127.0.0.1 }\n  s2: { machine: m2, ip: 127.0.0.2 }\n'
      + 'stores:\n  st: { slots: [s1, s2], preferredMaster: s1 }\nusers:\n  alice: st\n');
    const file = join(tmp, 'sub', 'd.json');
    const d = await open(file, seed);
    expect((await d.resolve('alice'))?.master.ip).toBe('127.0.0.1');
    await d.close();
    expect(JSON.parse(await readFile(file, 'utf8'))).toMatchObject({ users: { alice: 'st' } });
  });

  it('refuses to start on a broken directory file, naming the entry and rule', async () => {
    const file = join(tmp, 'd.yaml');
    await writeFile(file, 'slots:\n  s1: { machine: m1, ip: not-an-ip }\nstores: {}\nusers: {}\n');
    const err = await open(file).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DirectoryFileError);
    expect((err as DirectoryFileError).problems).toEqual([{ path: 'slots.s1', message: expect.stringContaining('[INVALID_IP]') }]);
  });

  it('answers a save failure with DirectoryUnavailableError and keeps the old state', async () => {
    const file = join(tmp, 'd.json');
    const d = await open(file);
    await d.createSlot({ name: 's1', machine: 'm1', ip: '127.0.0.1' }, 'test');
    // A non-empty folder where the file should be: the rename fails, even for root.
    await rm(file);
    await mkdir(join(file, 'blocker'), { recursive: true });
    await expect(d.setSlotState('s1', 'down', 'test')).rejects.toBeInstanceOf(DirectoryUnavailableError);
    expect((await d.getSlot('s1'))?.state).toBe('up');
    expect(await d.version()).toBe(1);
    expect(await d.history(10)).toHaveLength(1);
    await d.close();
  });

  it('ignores and removes a temp file left by a crash mid-save', async () => {
    const file = join(tmp, 'd.json');
    const a = await open(file);
    await a.createSlot({ name: 's1', machine: 'm1', ip: '127.0.0.1' }, 'test');
    await a.close();
    await writeFile(join(tmp, '.d.json.tmp-999-abc'), '{"version": 9, "slots": {"s1": {"mach');
    // A crash while compacting the audit history leaves its own temp file.
    await writeFile(join(tmp, '.d.json.history.jsonl.tmp-999-def'), '{"version": 1, "act');
    const b = await open(file);
    expect(await b.version()).toBe(1);
    expect(await b.history(10)).toHaveLength(1);
    expect(await readdir(tmp)).toEqual(expect.not.arrayContaining([expect.stringContaining('.tmp-')]));
    await b.close();
  });
});
