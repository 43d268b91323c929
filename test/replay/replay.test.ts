/**
 * Replay after a failover, against real peers: the new master is a real Cyrus slot (LMTP in,
 * IMAP for the presence check and for reading back), set up with the e2e harness's single-slot
 * helper; failure modes use the test LMTP backend.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { createDirectory, type Directory } from '../../src/directory/index.js';
import { deliverMessage } from '../../src/lmtp/index.js';
import { openJournal, type Journal, type JournalReader } from '../../src/journal/index.js';
import { replayStore, type ReplayOptions } from '../../src/replay/index.js';
import { parseConfig } from '../../src/config/index.js';
import { CyrusSlot, CYRUS_PORTS } from '../e2e/stack/cyrus.js';
import { makeWorkDir, removeWorkDir } from '../e2e/stack/workdir.js';
import { startLmtpBackend, type LmtpBackend } from '../helpers/lmtp-backend.js';
import { testLogger, testRegistry } from '../helpers/logger.js';
import { waitFor } from '../helpers/ports.js';
import { journalConfig, journalOne, message, recipient, sha, tempDir } from '../journal/helpers.js';

const ADMIN_PW = 'replay-admin-pw';
const obs = () => ({ logger: testLogger(), metrics: testRegistry() });

async function directoryIn(dir: string, newMaster: { ip: string; lmtp: number; imap: number }): Promise<Directory> {
  const config = parseConfig({ directory: { embedded: { file: join(dir, 'directory.json') } } }).directory;
  const d = await createDirectory(config, obs());
  await d.createSlot({ name: 'slotA', machine: 'mA', ip: '127.0.0.1', lmtp: 1, imap: 1 }, 'test');
  await d.createSlot({ name: 'slotB', machine: 'mB', ip: newMaster.ip, lmtp: newMaster.lmtp, imap: newMaster.imap }, 'test');
  await d.createStore({ name: 'store1', slots: ['slotA', 'slotB'], preferredMaster: 'slotA' }, 'test');
  await d.createUser({ name: 'alice', store: 'store1' }, 'test');
  await d.createUser({ name: 'bob', store: 'store1' }, 'test');
  return d;
}

describe.sequential('replay to a real Cyrus after failover', () => {
  let work: string;
  let cyrus: CyrusSlot;
  let directory: Directory;
  let journal: Journal;
  let cleanupJournal: () => Promise<void>;

  beforeAll(async () => {
    work = makeWorkDir('replay');
    cyrus = new CyrusSlot({ name: 'rb1', machine: 'mB', ip: '127.44.2.1', baseDir: work, adminPassword: ADMIN_PW });
    await cyrus.start();
    await cyrus.createMailbox('alice');
    await cyrus.createMailbox('bob');
    const j = await tempDir('replay');
    cleanupJournal = j.cleanup;
    journal = await openJournal(journalConfig(j.dir), obs());
    directory = await directoryIn(j.dir, { ip: cyrus.ip, lmtp: CYRUS_PORTS.lmtp, imap: CYRUS_PORTS.imap });
  }, 60_000);

  afterAll(async () => {
    await journal?.close();
    await directory?.close();
    await cyrus?.stop();
    await cleanupJournal?.();
    if (work) removeWorkDir(work);
  });

  const replay = (over: Partial<ReplayOptions> = {}) => replayStore({
    journal, directory, store: 'store1', actor: 'test', obs: obs(),
    imap: parseConfig({ replay: { imap: { password: ADMIN_PW, timeoutMs: 5_000 } } }).replay, ...over,
  });

  it('re-delivers exactly the records that went to the old master, skips those already there, and does nothing the second time', async () => {
    const toOld = (n: number, user: string) => journalOne(journal, message(`old${n}@replay.test`), [
      recipient(`${user}@replay.test`, { user, store: 'store1', slot: 'slotA', epoch: 1 }),
    ], { messageId: `<old${n}@replay.test>` });
    // Delivered to slotA (the old master) in the replication lag:
    await toOld(1, 'alice');
    await toOld(2, 'alice');
    await toOld(3, 'bob');
    // A record of another store, and one for a recipient of store1 that went to slotB after the failover.
    await journalOne(journal, message('other@replay.test'), [recipient('carol@replay.test', { user: 'carol', store: 'store2', slot: 'slotX' })],
      { messageId: '<other@replay.test>' });
    // old2 did replicate: it is already on the new master.
    const replicated = await deliverMessage({ host: cyrus.ip, port: CYRUS_PORTS.lmtp, slot: 'slotB' },
      { mailFrom: 'sender@example.org', recipients: ['alice@replay.test'] }, message('old2@replay.test'));
    expect(replicated.data[0]?.code).toBe(250);

    const store = await directory.failover('store1', { to: 'slotB', force: true }, 'test');
    expect(store.currentMaster).toBe('slotB');
    await journalOne(journal, message('new1@replay.test'), [
      recipient('alice@replay.test', { user: 'alice', store: 'store1', slot: 'slotB', epoch: store.epoch }),
    ], { messageId: '<new1@replay.test>' });

    const first = await replay();
    expect({ ...first, items: undefined }).toMatchObject({
      master: 'slotB', selected: 3, alreadyPresent: 1, delivered: 2, refused: 0, failed: 0, skippedAlreadyReplayed: 0,
    });
    expect(first.items.find((i) => i.messageId === '<old2@replay.test>')?.outcome).toBe('alreadyPresent');
    const alice = (await cyrus.inbox('alice')).map((m) => m.messageId).sort();
    expect(alice).toEqual(['<old1@replay.test>', '<old2@replay.test>']);
    expect((await cyrus.inbox('bob')).map((m) => m.messageId)).toEqual(['<old3@replay.test>']);

    const second = await replay();
    expect({ ...second, items: undefined }).toMatchObject({ selected: 3, delivered: 0, alreadyPresent: 0, skippedAlreadyReplayed: 3 });
    expect((await cyrus.inbox('alice'))).toHaveLength(2);

    // The ledger says who did what.
    const ledger = (await readFile(join(journal.dir, 'replay-ledger.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(ledger).toHaveLength(3);
    expect(ledger.every((e) => e.actor === 'test' && e.toSlot === 'slotB')).toBe(true);

    // --again with the check still finds them all present: nothing is stored twice.
    const again = await replay({ again: true });
    expect({ ...again, items: undefined }).toMatchObject({ alreadyPresent: 3, delivered: 0 });
    expect((await cyrus.inbox('alice'))).toHaveLength(2);
  });

  it('filters by user and time window, and --all includes what went to the current master', async () => {
    const onlyBob = await replay({ user: 'bob', again: true, dryRun: true });
    expect(onlyBob.selected).toBe(1);
    const future = await replay({ since: new Date(Date.now() + 60_000) });
    expect(future.selected).toBe(0);
    const all = await replay({ all: true, dryRun: true, check: false });
    expect(all.selected).toBe(4);
    expect(all.wouldDeliver).toBe(1); // the three replayed are in the ledger; new1 would go again
  });

  it('refuses an unknown store and a bad time with errors naming them, changing nothing', async () => {
    await expect(replay({ store: 'nope' })).rejects.toMatchObject({ code: 'DIRECTORY_NOT_FOUND' });
    await expect(replay({ since: 'yesterday-ish' })).rejects.toThrow(/since: expected an ISO-8601 time/);
  });
});

describe('replay outcomes against an LMTP backend that refuses or fails', () => {
  let j: { dir: string; cleanup: () => Promise<void> };
  let backend: LmtpBackend;
  let journal: Journal;
  let directory: Directory;

  beforeEach(async () => {
    j = await tempDir('replay-fail');
    backend = await startLmtpBackend();
    journal = await openJournal(journalConfig(j.dir), obs());
    directory = await directoryIn(j.dir, { ip: backend.host, lmtp: backend.port, imap: 1 });
    await directory.failover('store1', { to: 'slotB', force: true }, 'test');
  });
  afterEach(async () => {
    await journal.close();
    await directory.close();
    await backend.close();
    await j.cleanup();
  });

  it('counts 5xx as refused and 4xx as failed; a failed recipient is retried by the next replay', async () => {
    for (const user of ['alice', 'bob']) {
      await journalOne(journal, message(`${user}@x`), [recipient(`${user}@replay.test`, { user, slot: 'slotA' })], { messageId: `<${user}@x>` });
    }
    backend.behaviour = {
      rcpt: (a) => (a.startsWith('bob') ? { code: 550, text: '5.1.1 User unknown' } : 'accept'),
      final: () => ({ code: 451, text: '4.3.0 try later' }),
    };
    const base = { journal, directory, store: 'store1', check: false, actor: 'test', obs: obs(),
      imap: parseConfig({}).replay } as const;
    const first = await replayStore(base);
    expect({ ...first, items: undefined }).toMatchObject({ selected: 2, delivered: 0, refused: 1, failed: 1 });
    expect(first.items.find((i) => i.user === 'bob')?.detail).toBe('550 5.1.1 User unknown');
    backend.behaviour = {};
    const second = await replayStore(base);
    expect({ ...second, items: undefined }).toMatchObject({ delivered: 1, skippedAlreadyReplayed: 1, failed: 0 });
    expect(backend.messages.at(-1)?.body.toString()).toContain('alice@x');
  });

  it('keeps delivering every body while the journal seals and retention deletes the segments it selected from', async () => {
    const t2 = await tempDir('replay-rotate');
    let now = Date.now();
    // Small segments: 20 records of 40 KB fill several; the last few are still in the open one.
    const jr = await openJournal(journalConfig(t2.dir, { segmentBytes: 64 * 1024, maxBytes: 1024 * 1024, retentionMs: 10_000 }),
      obs(), { now: () => now });
    try {
      const shaById = new Map<string, string>();
      for (let i = 0; i < 20; i++) {
        const b = message(`rot${i}@x`, 40_000);
        shaById.set(`<rot${i}@x>`, sha(b));
        await journalOne(jr, b, [recipient('alice@replay.test', { slot: 'slotA' })], { messageId: `<rot${i}@x>`, receivedAt: new Date(now) });
      }
      const segs = async () => (await readdir(t2.dir)).filter((n) => n.startsWith('seg-'));
      const openSeg = (await segs()).find((n) => n.endsWith('.open'))!;
      expect((await segs()).filter((n) => n.endsWith('.seg')).length).toBeGreaterThan(2);
      // Between the replay's listing and its first body read: the open segment is sealed
      // (renamed), then retention deletes every sealed segment.
      let disturbed = false;
      const disturb = async () => {
        if (disturbed) return;
        disturbed = true;
        now += 2_000;
        await jr.maintain();
        await waitFor(async () => !(await segs()).includes(openSeg), 5000, `${openSeg} sealed`);
        now += 20_000;
        await jr.maintain();
        expect((await segs()).filter((n) => n.endsWith('.seg'))).toEqual([]);
      };
      const reader: JournalReader = {
        dir: jr.dir,
        read: (f) => jr.read(f),
        openBody: (r) => Readable.from((async function* () { await disturb(); yield* jr.openBody(r); })()),
        session: () => {
          const s = jr.session();
          return { read: (f) => s.read(f), close: () => s.close(), openBody: async (r) => { await disturb(); return s.openBody(r); } };
        },
      };
      const summary = await replayStore({ journal: reader, directory, store: 'store1', check: false, actor: 'test', obs: obs(),
        imap: parseConfig({}).replay });
      expect({ ...summary, items: undefined }).toMatchObject({ selected: 20, delivered: 20, failed: 0 });
      expect(disturbed).toBe(true);
      expect(backend.messages).toHaveLength(20);
      for (const m of backend.messages) {
        const id = /^Message-ID: (<[^>]+>)/m.exec(m.body.toString())![1]!;
        expect(sha(m.body)).toBe(shaById.get(id));
      }
    } finally {
      await jr.close();
      await t2.cleanup();
    }
  });

  it('refuses to run while another replay holds this journal, leaving everything as it was', async () => {
    await journalOne(journal, message('l@x'), [recipient('alice@replay.test', { slot: 'slotA' })], { messageId: '<l@x>' });
    await writeFile(join(j.dir, 'replay.lock'), `${process.pid}\n`);
    const base = { journal, directory, store: 'store1', check: false, actor: 'test', obs: obs(), imap: parseConfig({}).replay } as const;
    await expect(replayStore(base)).rejects.toMatchObject({ code: 'JOURNAL_UNAVAILABLE', message: expect.stringContaining('another replay is running') });
    expect(backend.messages).toHaveLength(0);
    expect((await replayStore({ ...base, dryRun: true })).wouldDeliver).toBe(1);
    await rm(join(j.dir, 'replay.lock'));
    expect((await replayStore(base)).delivered).toBe(1);
  });

  it('a check that cannot reach IMAP fails the recipient instead of guessing', async () => {
    await journalOne(journal, message('c@x'), [recipient('alice@replay.test', { slot: 'slotA' })], { messageId: '<c@x>' });
    const r = await replayStore({ journal, directory, store: 'store1', actor: 'test', obs: obs(),
      imap: parseConfig({ replay: { imap: { password: 'x', timeoutMs: 500 } } }).replay });
    expect(r.failed).toBe(1);
    expect(r.items[0]?.detail).toMatch(/^IMAP check failed/);
    expect(backend.messages).toHaveLength(0);
  });
});
