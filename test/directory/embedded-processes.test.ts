/**
 * One embedded directory file shared by two real processes: a long-running one (the test process,
 * like `storeroute serve`, with the read cache) and others (child processes, like the CLI). The
 * running one must see the others' saves within milliseconds and never overwrite them; concurrent
 * compare-and-set failovers from different processes must still have exactly one winner.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/index.js';
import { CachedDirectory, createDirectory, DirectoryUnavailableError, EmbeddedDirectory, type Directory } from '../../src/directory/index.js';
import { waitFor } from '../helpers/ports.js';
import { testLogger, testRegistry } from '../helpers/logger.js';
import { seedLayout } from './behaviour.js';

const obs = () => ({ logger: testLogger(), metrics: testRegistry() });

interface Worker {
  child: ChildProcess;
  lines: string[];
  line(match: (l: string) => boolean, what: string): Promise<string>;
  exited: Promise<unknown>;
}

function startWorker(...args: string[]): Worker {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/directory/fixtures/embedded-worker.ts', ...args],
    { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines: string[] = [];
  createInterface({ input: child.stdout! }).on('line', (l) => lines.push(l));
  return {
    child, lines,
    line: (match, what) => waitFor(() => lines.find(match), 20_000, what),
    exited: new Promise((r) => child.once('exit', r)),
  };
}

describe('embedded directory shared by several processes', () => {
  let tmp: string;
  let file: string;
  let workers: Worker[];
  let opened: Directory[];
  beforeEach(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'sr-procs-'));
    file = join(tmp, 'directory.json');
    workers = [];
    opened = [];
  });
  afterEach(async () => {
    for (const w of workers) {
      if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGKILL');
      await w.exited;
    }
    for (const d of opened) await d.close();
    await rm(tmp, { recursive: true, force: true });
  });

  const worker = (...args: string[]) => {
    const w = startWorker(file, ...args);
    workers.push(w);
    return w;
  };
  const openCached = async () => {
    const d = await createDirectory(parseConfig({ directory: { embedded: { file } } }).directory, obs());
    opened.push(d);
    expect(d).toBeInstanceOf(CachedDirectory);
    return d;
  };
  const result = async (w: Worker) => JSON.parse(await w.line((l) => l.startsWith('{'), 'the worker\'s result')) as
    { ok: boolean; epoch?: number; error?: string };

  it('a failover saved by another process reaches the running process\'s cached resolve within milliseconds', async () => {
    const serve = await openCached();
    await seedLayout(serve);
    expect((await serve.resolve('alice'))?.master.name).toBe('slot101');
    expect((await serve.resolve('alice'))?.master.name).toBe('slot101'); // cached now
    const cli = worker('failover', 'store1', 'slot201', '-');
    await cli.line((l) => l === 'ready', 'the worker to open the directory');
    cli.child.stdin!.write('go\n');
    expect(await result(cli)).toEqual({ ok: true, epoch: 1 });
    const saved = Date.now();
    // Well under the 1 s stat poll: this is fs.watch at work.
    await waitFor(async () => (await serve.resolve('alice'))?.master.name === 'slot201', 500, 'the failover to be seen');
    expect(Date.now() - saved).toBeLessThan(500);
    expect((await serve.getStore('store1'))?.epoch).toBe(1);
  }, 30_000);

  it('the running process\'s next mutation builds on the other process\'s save instead of overwriting it', async () => {
    const serve = await openCached();
    await seedLayout(serve);
    const seeded = await serve.version();
    const cli = worker('failover', 'store1', 'slot201', '-');
    await cli.line((l) => l === 'ready', 'the worker to open the directory');
    cli.child.stdin!.write('go\n');
    expect((await result(cli)).ok).toBe(true);
    // At once, without waiting for the watcher: the lock + re-read must carry the failover over.
    await serve.setSlotState('slot102', 'maintenance', 'test');
    await cli.exited;
    const fresh = await EmbeddedDirectory.open({ file, historyLimit: 100 }, obs());
    opened.push(fresh);
    expect(await fresh.getStore('store1')).toMatchObject({ currentMaster: 'slot201', epoch: 1 });
    expect((await fresh.getSlot('slot102'))?.state).toBe('maintenance');
    expect(await fresh.version()).toBe(seeded + 2);
    // Both audit records, in order, seen from either process.
    const actions = (await serve.history(2)).map((r) => [r.version, r.action]);
    expect(actions).toEqual([[seeded + 2, 'setSlotState'], [seeded + 1, 'failover']]);
    expect((await fresh.history(2)).map((r) => [r.version, r.action])).toEqual(actions);
  }, 30_000);

  it('notices another handle\'s save by the stat poll alone when fs.watch reports nothing', async () => {
    const a = await EmbeddedDirectory.open({ file, historyLimit: 100 }, obs());
    opened.push(a);
    await seedLayout(a);
    const b = await EmbeddedDirectory.open({ file, historyLimit: 100, fsWatch: false, pollMs: 100 }, obs());
    opened.push(b);
    const events: string[] = [];
    b.onChange((e) => events.push(`${e.action} ${e.target}`));
    await a.failover('store1', {}, 'test');
    await waitFor(async () => (await b.resolve('alice'))?.master.name === 'slot201', 1_000, 'the poll to reload');
    expect(events).toEqual(['reload store:store1']);
  });

  it('of two processes failing one store over with the same expectedEpoch, exactly one wins', async () => {
    const setup = await EmbeddedDirectory.open({ file, historyLimit: 100 }, obs());
    await seedLayout(setup);
    await setup.close();
    const a = worker('failover', 'store1', 'slot201', '0');
    const b = worker('failover', 'store1', 'slot201', '0');
    await a.line((l) => l === 'ready', 'worker a');
    await b.line((l) => l === 'ready', 'worker b');
    a.child.stdin!.write('go\n');
    b.child.stdin!.write('go\n');
    const results = [await result(a), await result(b)];
    expect(results.filter((r) => r.ok)).toEqual([{ ok: true, epoch: 1 }]);
    expect(results.filter((r) => !r.ok).map((r) => r.error)).toEqual(['DirectoryConflictError']);
    const fresh = await EmbeddedDirectory.open({ file, historyLimit: 100 }, obs());
    opened.push(fresh);
    expect(await fresh.getStore('store1')).toMatchObject({ currentMaster: 'slot201', epoch: 1 });
    expect((await fresh.history(100)).filter((r) => r.action === 'failover')).toHaveLength(1);
  }, 30_000);

  it('waits a bounded time for a live holder\'s lock, and breaks the lock once its holder is killed', async () => {
    const dir = await EmbeddedDirectory.open({ file, historyLimit: 100, lockWaitMs: 300 }, obs());
    opened.push(dir);
    await seedLayout(dir);
    const holder = worker('hold-lock');
    await holder.line((l) => l === 'locked', 'the worker to take the lock');
    const started = Date.now();
    const err = await dir.failover('store1', {}, 'test').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DirectoryUnavailableError);
    expect((err as Error).message).toContain(`locked by pid ${holder.child.pid}`);
    expect(Date.now() - started).toBeLessThan(2_000);
    expect((await dir.getStore('store1'))?.epoch).toBe(0);
    holder.child.kill('SIGKILL');
    await holder.exited;
    expect(existsSync(`${file}.lock`)).toBe(true); // left behind by the dead holder
    expect(await dir.failover('store1', {}, 'test')).toMatchObject({ currentMaster: 'slot201', epoch: 1 });
    expect(existsSync(`${file}.lock`)).toBe(false);
  }, 30_000);

  it('breaks a lock from a previous boot and an unreadable lock once old, but not a fresh unreadable one', async () => {
    const dir = await EmbeddedDirectory.open({ file, historyLimit: 100, lockWaitMs: 300 }, obs());
    opened.push(dir);
    // Our own pid is alive, so only the boot id can make this one stale (pids restart after a reboot).
    await writeFile(`${file}.lock`, JSON.stringify({ pid: process.pid, host: (await import('node:os')).hostname(),
      bootId: 'an-earlier-boot', at: '2020-01-01T00:00:00Z', token: 'x' }));
    await dir.createSlot({ name: 's1', machine: 'm1', ip: '127.0.0.1' }, 'test');
    await writeFile(`${file}.lock`, ''); // a holder killed between create and write: too fresh to judge
    await expect(dir.createSlot({ name: 's2', machine: 'm2', ip: '127.0.0.2' }, 'test')).rejects.toBeInstanceOf(DirectoryUnavailableError);
    const old = new Date(Date.now() - 10_000);
    await utimes(`${file}.lock`, old, old);
    await dir.createSlot({ name: 's2', machine: 'm2', ip: '127.0.0.2' }, 'test');
    expect(Object.keys((await dir.snapshot()).slots)).toEqual(['s1', 's2']);
  });
});
