import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { open, readdir, readFile, rename, stat, truncate, unlink, writeFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { openJournal, openJournalReader, type Journal } from '../../src/journal/index.js';
import { formatReply } from '../../src/core/replies.js';
import { StorerouteError } from '../../src/core/errors.js';
import { lmtpReplyFor } from '../../src/lmtp/index.js';
import { testLogger, testRegistry } from '../helpers/logger.js';
import { waitFor } from '../helpers/ports.js';
import { bodyOf, capturingLogger, journalConfig, journalOne, message, readAll, recipient, sha, tempDir } from './helpers.js';

let dir: string;
let cleanup: () => Promise<void>;
const opened: Journal[] = [];
const obs = () => ({ logger: testLogger(), metrics: testRegistry() });

async function start(over: Record<string, unknown> = {}, options: { now?: () => number } = {}, o = obs()): Promise<Journal> {
  const j = await openJournal(journalConfig(dir, over), o, options);
  opened.push(j);
  return j;
}

beforeEach(async () => ({ dir, cleanup } = await tempDir()));
afterEach(async () => {
  for (const j of opened.splice(0)) await j.close();
  await cleanup();
});

async function segmentFiles(): Promise<string[]> {
  return (await readdir(dir)).filter((n) => n.startsWith('seg-')).sort();
}

describe('journal write and read back', () => {
  it('returns every committed record with its store, slot, epoch, body and sha-256', async () => {
    const j = await start();
    const bodies = [message('a@x', 10), message('b@x', 4000), message('c@x', 300_000), message('d@x', 70_000)];
    // Concurrent records interleave their frames in one segment.
    await Promise.all(bodies.map((b, i) => journalOne(j, b, [
      recipient(`u${i}@example.com`, { store: i % 2 ? 'store2' : 'store1', slot: `slot${i}`, epoch: 7 + i }),
    ], { chunk: 777, messageId: `<m${i}@x>` })));
    const records = await readAll(j.read());
    expect(records).toHaveLength(4);
    for (const r of records) {
      const i = Number(r.recipients[0]!.address.slice(1, 2));
      expect(r.recipients[0]).toMatchObject({ store: i % 2 ? 'store2' : 'store1', slot: `slot${i}`, epoch: 7 + i });
      expect(formatReply(r.recipients[0]!.reply)).toBe('250 2.0.0 2.1.5 ok');
      expect(r.messageId).toBe(`<m${i}@x>`);
      expect(r.mailFrom).toBe('sender@example.org');
      expect(r.size).toBe(bodies[i]!.length);
      expect(r.sha256).toBe(sha(bodies[i]!));
      expect(sha(await bodyOf(j, r))).toBe(sha(bodies[i]!));
    }
    expect((await readAll(j.read({ store: 'store2' }))).map((r) => r.recipients[0]!.slot).sort()).toEqual(['slot1', 'slot3']);
    expect(await readAll(j.read({ user: 'u2' }))).toHaveLength(1);
    expect(await readAll(j.read({ since: new Date(Date.now() + 60_000) }))).toHaveLength(0);
    expect(j.stats().records).toBe(4);
  });

  it('stores bodies written in chunks of any size (tiny, over 64 KiB, across frame boundaries) in BODY frames of at most 64 KiB', async () => {
    const j = await start();
    const body = message('sizes@x', 400_000);
    const sizes = [1, 65_535, 2, 200_000, 16_384, 77];
    const entry = j.begin({ queueId: 'Qsizes', mailFrom: 'sender@example.org', receivedAt: new Date() });
    let at = 0;
    for (let i = 0; at < body.length; i++) {
      const n = sizes[i % sizes.length]!;
      entry.write(body.subarray(at, at + n));
      at += n;
    }
    await entry.commit([recipient('a@example.com')], { messageId: '<sizes@x>', size: body.length });
    const [r] = await readAll(j.read());
    expect(r!.sha256).toBe(sha(body));
    expect((await bodyOf(j, r!)).equals(body)).toBe(true);
    const lengths = r!.location.chunks.map(([, len]) => len);
    expect(lengths.reduce((a, b) => a + b, 0)).toBe(body.length);
    // Full 64 KiB frames, then the remainder: the same frames as when chunks were copied together.
    expect(lengths.slice(0, -1).every((len) => len === 64 * 1024)).toBe(true);
    expect(lengths.at(-1)).toBe(body.length % (64 * 1024) || 64 * 1024);
  });

  it('copies each chunk on write: the caller may overwrite its buffer at once', async () => {
    const j = await start();
    const body = message('reuse@x', 150_000);
    const entry = j.begin({ queueId: 'Qreuse', mailFrom: 'sender@example.org', receivedAt: new Date() });
    const scratch = Buffer.alloc(10_000);
    for (let at = 0; at < body.length; at += scratch.length) {
      const n = body.copy(scratch, 0, at, at + scratch.length);
      entry.write(scratch.subarray(0, n));
      scratch.fill(0x58); // what a reused socket buffer would hold next
    }
    await entry.commit([recipient('a@example.com')], { messageId: '<reuse@x>', size: body.length });
    const [r] = await readAll(j.read());
    expect(r!.sha256).toBe(sha(body));
    expect((await bodyOf(j, r!)).equals(body)).toBe(true);
  });

  it('reuses its frame buffers without mixing records: many concurrent records, some aborted, in several rounds', async () => {
    const j = await start();
    const kept: Buffer[] = [];
    for (let round = 0; round < 4; round++) {
      await Promise.all(Array.from({ length: 12 }, async (_, i) => {
        const body = message(`pool${round}-${i}@x`, 1_000 + ((round * 12 + i) * 37_717) % 200_000);
        const entry = j.begin({ queueId: `P${round}-${i}`, mailFrom: 's@x', receivedAt: new Date() });
        for (let at = 0; at < body.length; at += 30_000) {
          entry.write(body.subarray(at, at + 30_000));
          await new Promise((r) => setImmediate(r)); // records interleave, as concurrent sessions do
        }
        if (i % 5 === 4) return entry.abort();
        kept.push(body);
        await entry.commit([recipient('a@example.com')], { messageId: `<pool${round}-${i}@x>`, size: body.length });
      }));
    }
    const records = await readAll(j.read());
    expect(records).toHaveLength(kept.length);
    const want = new Set(kept.map((b) => sha(b)));
    for (const r of records) {
      const got = await bodyOf(j, r);
      expect(want.has(sha(got))).toBe(true);
      expect(sha(got)).toBe(r.sha256);
    }
  });

  it('with writes batched (interval): a record is readable as soon as commit resolves, and reaches the file unasked within milliseconds', async () => {
    const j = await start({ durability: 'interval', fsyncIntervalMs: 60_000 });
    const body = message('batched@x', 5_000);
    await journalOne(j, body, [recipient('a@example.com')]);
    const [r] = await readAll(j.read()); // a read writes what is pending first
    expect((await bodyOf(j, r!)).equals(body)).toBe(true);
    await journalOne(j, message('later@x', 5_000), [recipient('a@example.com')]);
    const [seg] = await segmentFiles();
    const before = (await stat(join(dir, seg!))).size;
    // Nothing reads or syncs now: the short write delay alone puts the second record in the file.
    await waitFor(async () => (await stat(join(dir, seg!))).size > before, 2_000, 'batched write');
  });

  it('ignores aborted records and records never committed, and keeps records across a reopen', async () => {
    let j = await start();
    await journalOne(j, message('kept@x'), [recipient('a@example.com')]);
    const aborted = j.begin({ queueId: 'A', mailFrom: '', receivedAt: new Date() });
    aborted.write(message('aborted@x', 100_000));
    aborted.abort();
    const dangling = j.begin({ queueId: 'D', mailFrom: '', receivedAt: new Date() });
    dangling.write(message('dangling@x', 100_000));
    await j.close();
    opened.length = 0;
    j = await start();
    const records = await readAll(j.read());
    expect(records.map((r) => r.queueId)).toHaveLength(1);
    expect((await bodyOf(j, records[0]!)).toString()).toContain('kept@x');
    expect(j.stats().records).toBe(1);
  });

  it('refuses a second writer on the same directory and rejects commits after close with 451', async () => {
    const j = await start();
    await expect(openJournal(journalConfig(dir), obs())).rejects.toMatchObject({ code: 'JOURNAL_UNAVAILABLE' });
    const entry = j.begin({ queueId: 'Q', mailFrom: '', receivedAt: new Date() });
    entry.write(Buffer.from('x\r\n'));
    expect(entry.failed?.()).toBe(false);
    await j.close();
    // The LMTP side asks before the final dot, and withholds it: no copy is delivered that we could not journal.
    expect(entry.failed?.()).toBe(true);
    expect(j.begin({ queueId: 'Q2', mailFrom: '', receivedAt: new Date() }).failed?.()).toBe(true);
    const err = await entry.commit([recipient('a@example.com')], { messageId: null, size: 3 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorerouteError);
    expect(formatReply(lmtpReplyFor(err))).toBe('451 4.3.0 Replay journal unavailable, try again later');
  });

  it('reads a directory a live writer holds, without a lock (the CLI next to a running proxy)', async () => {
    const j = await start();
    await journalOne(j, message('live@x'), [recipient('a@example.com')]);
    const reader = openJournalReader(dir);
    const records = await readAll(reader.read({ store: 'store1' }));
    expect(records).toHaveLength(1);
    expect((await bodyOf(reader, records[0]!)).toString()).toContain('live@x');
  });
});

describe('journal readers while the writer seals and retention deletes', () => {
  // Rotation by age: rotateAfterMs is max(1 s, retention / 5) = 2 s here; the clock is ours.
  let now = 1_700_000_000_000;
  const clock = { now: () => now };
  const sealedFiles = async () => (await segmentFiles()).filter((n) => n.endsWith('.seg'));

  /** Rotates the active segment (by age) and waits until it is sealed under its final name. */
  async function sealActive(j: Journal): Promise<void> {
    const before = (await sealedFiles()).length;
    now += 2_000;
    await j.maintain();
    await waitFor(async () => (await sealedFiles()).length > before, 5000, 'segment sealed');
  }

  it('openBody reads a record found in the open segment after that segment was sealed (renamed)', async () => {
    const j = await start({ retentionMs: 10_000 }, clock);
    const body = message('sealed-later@x', 150_000);
    await journalOne(j, body, [recipient('a@example.com')], { messageId: '<sealed-later@x>', receivedAt: new Date(now) });
    const [record] = await readAll(j.read());
    expect(basename(record!.location.file)).toBe('seg-00000001.open');
    await sealActive(j);
    expect(await segmentFiles()).not.toContain('seg-00000001.open');
    expect(sha(await bodyOf(j, record!))).toBe(sha(body));
  });

  it('the lock-free reader still reads a segment the writer sealed between its listing and its open', async () => {
    const j = await start({ retentionMs: 10_000 }, clock);
    await journalOne(j, message('first@x'), [recipient('a@example.com')], { messageId: '<first@x>', receivedAt: new Date(now) });
    await sealActive(j); // segment 1 sealed; segment 2 is the open one
    await journalOne(j, message('second@x'), [recipient('a@example.com')], { messageId: '<second@x>', receivedAt: new Date(now) });
    const reader = openJournalReader(dir);
    const it = reader.read()[Symbol.asyncIterator]();
    const first = await it.next(); // the directory is listed: seg-00000001-….seg and seg-00000002.open
    expect(first.value?.messageId).toBe('<first@x>');
    await sealActive(j); // seg-00000002.open becomes seg-00000002-….seg before the reader opens it
    const second = await it.next();
    expect(second.value?.messageId).toBe('<second@x>');
    expect(basename(second.value!.location.file)).toMatch(/^seg-00000002-.*\.seg$/);
    expect((await bodyOf(reader, second.value!)).toString()).toContain('second@x');
  });

  it('a read session keeps its segments readable after retention deleted them; without one the body fails with a clear error', async () => {
    const j = await start({ retentionMs: 10_000 }, clock);
    const body = message('expiring@x', 80_000);
    await journalOne(j, body, [recipient('a@example.com')], { messageId: '<expiring@x>', receivedAt: new Date(now) });
    await sealActive(j);
    const session = j.session();
    try {
      const [held] = await readAll(session.read());
      const [plain] = await readAll(j.read());
      now += 20_000; // past retention: the sealed segment is deleted
      await j.maintain();
      expect((await sealedFiles()).filter((n) => n.startsWith('seg-00000001'))).toEqual([]);
      // The session's fd keeps the deleted segment readable.
      const stream = await session.openBody(held!);
      const parts: Buffer[] = [];
      for await (const c of stream) parts.push(c as Buffer);
      expect(sha(Buffer.concat(parts))).toBe(sha(body));
      // Nothing held the segment for the plain record: a per-record error naming it, not a crash.
      await expect(bodyOf(j, plain!)).rejects.toMatchObject({ code: 'JOURNAL_RECORD_GONE', message: expect.stringContaining('removed by retention') });
      const other = j.session();
      await expect(other.openBody(plain!)).rejects.toMatchObject({ code: 'JOURNAL_RECORD_GONE' });
      await other.close();
    } finally {
      await session.close();
    }
  });
});

describe('journal durability', () => {
  it('durable: commit resolves only after an fsync, and concurrent commits share one', async () => {
    const j = await start({ durability: 'durable' });
    let fsyncsAtResolve = -1;
    await journalOne(j, message('one@x'), [recipient('a@example.com')]).then(() => { fsyncsAtResolve = j.stats().fsyncs; });
    expect(fsyncsAtResolve).toBe(1);
    const before = j.stats().fsyncs;
    const seen: number[] = [];
    await Promise.all(Array.from({ length: 20 }, (_, i) =>
      journalOne(j, message(`c${i}@x`), [recipient(`u${i}@example.com`)]).then(() => seen.push(j.stats().fsyncs))));
    const used = j.stats().fsyncs - before;
    expect(seen.every((n) => n > before)).toBe(true);
    expect(used).toBeGreaterThanOrEqual(1);
    expect(used).toBeLessThanOrEqual(2);
  });

  it('interval: commit resolves at once and the timer fsyncs later; off: never', async () => {
    const j = await start({ durability: 'interval', fsyncIntervalMs: 50 });
    await journalOne(j, message('i@x'), [recipient('a@example.com')]);
    expect(j.stats().fsyncs).toBe(0);
    await waitFor(() => j.stats().fsyncs >= 1, 2000, 'interval fsync');
    await j.close();
    opened.length = 0;
    const off = await start({ durability: 'off' });
    await journalOne(off, message('o@x'), [recipient('a@example.com')]);
    await off.close();
    opened.length = 0;
    expect(off.stats().fsyncs).toBe(0);
  });
});

describe('journal retention', () => {
  it('deletes whole segments whose newest record is older than the window', async () => {
    let now = 1_700_000_000_000;
    const j = await start({ retentionMs: 10_000 }, { now: () => now });
    await journalOne(j, message('old@x'), [recipient('a@example.com')], { receivedAt: new Date(now) });
    now += 2_000; // past rotateAfter (max(1 s, retention / 5)): the segment rotates and seals
    await j.maintain();
    await waitFor(async () => (await segmentFiles()).some((n) => n.endsWith('.seg')), 2000, 'sealed segment');
    await journalOne(j, message('new@x'), [recipient('a@example.com')], { receivedAt: new Date(now) });
    now += 9_000; // old record is 11 s old, new one 9 s
    await j.maintain();
    const ids = (await readAll(j.read())).map((r) => r.messageId);
    expect(ids).toHaveLength(1);
    // The first segment is gone as a whole; the second (rotated by age meanwhile) is kept.
    const sealed = (await segmentFiles()).filter((n) => n.endsWith('.seg'));
    expect(sealed).toHaveLength(1);
    expect(sealed[0]).toMatch(/^seg-00000002-/);
    expect(j.stats().oldestRecordAgeMs).toBe(9_000);
    expect(j.stats().records).toBe(1);
  });

  it('deletes the oldest segments when the size cap bites first', async () => {
    const j = await start({ maxBytes: 1024 * 1024, segmentBytes: 64 * 1024, retentionMs: 3_600_000 });
    for (let i = 0; i < 40; i++) await journalOne(j, message(`s${i}@x`, 60_000), [recipient('a@example.com')], { messageId: `<s${i}@x>` });
    await waitFor(async () => { await j.maintain(); return j.stats().bytes <= 1024 * 1024 + 256 * 1024; }, 5000, 'size cap');
    const ids = (await readAll(j.read())).map((r) => r.messageId);
    expect(ids.length).toBeLessThan(40);
    expect(ids.at(-1)).toBe('<s39@x>');
    expect(ids).not.toContain('<s0@x>');
  });
});

describe('journal crash safety', () => {
  async function writeTen(): Promise<string> {
    const j = await start();
    for (let i = 0; i < 10; i++) await journalOne(j, message(`r${i}@x`, 5_000), [recipient('a@example.com')], { messageId: `<r${i}@x>` });
    await j.close();
    opened.length = 0;
    const files = await segmentFiles();
    expect(files).toHaveLength(1);
    return join(dir, files[0]!);
  }

  it('a segment left open with a torn tail reopens with every complete record, counted and cut', async () => {
    const file = await writeTen();
    // As after kill -9 mid-write: the file is still .open and ends inside the last frame.
    const crashed = join(dir, 'seg-00000001.open');
    await rename(file, crashed);
    const { size } = await stat(crashed);
    await truncate(crashed, size - 100);
    const o = obs();
    const j = await start({}, {}, o);
    const ids = (await readAll(j.read())).map((r) => r.messageId);
    expect(ids).toEqual(Array.from({ length: 9 }, (_, i) => `<r${i}@x>`));
    expect(j.stats().corruptFramesSkipped).toBe(1);
    expect(await o.metrics.getSingleMetricAsString('storeroute_journal_corrupt_frames_total')).toContain('kind="torn"} 1');
    // New deliveries still work after recovery.
    await journalOne(j, message('after@x'), [recipient('a@example.com')], { messageId: '<after@x>' });
    expect((await readAll(j.read())).map((r) => r.messageId).at(-1)).toBe('<after@x>');
  });

  it('a flipped byte costs only the record it hits; records before and after survive', async () => {
    const file = await writeTen();
    const buf = await readFile(file);
    const hit = buf.indexOf('r4@x'); // inside record 4's body frame
    buf[hit + 1] = buf[hit + 1]! ^ 0x20;
    // And one flip inside a frame header (record 7's first frame), which forces a resync on magic.
    const seventh = buf.indexOf('r7@x');
    const header = buf.lastIndexOf(Buffer.from('SRJ1'), seventh);
    buf[header + 18] = buf[header + 18]! ^ 0xff;
    await writeFile(file, buf);
    const j = await start();
    const records = await readAll(j.read());
    expect(records.map((r) => r.messageId)).toEqual([0, 1, 2, 3, 5, 6, 8, 9].map((i) => `<r${i}@x>`));
    for (const r of records) expect(sha(await bodyOf(j, r))).toBe(r.sha256);
    expect(j.stats().corruptFramesSkipped).toBeGreaterThanOrEqual(2);
  });

  it('counts each damaged frame of a sealed segment once however often it is read, with one warning for the segment', async () => {
    const file = await writeTen();
    const buf = await readFile(file);
    for (const id of ['r4@x', 'r7@x']) {
      const hit = buf.indexOf(id); // inside the record's body frame
      buf[hit + 1] = buf[hit + 1]! ^ 0x20;
    }
    await writeFile(file, buf);
    const { logger, lines } = capturingLogger();
    const o = { logger, metrics: testRegistry() };
    const j = await start({}, {}, o);
    expect(lines.filter((l) => l.level >= 40)).toEqual([]); // a sealed segment is not scanned at start-up
    for (let pass = 0; pass < 3; pass++) expect(await readAll(j.read())).toHaveLength(8);
    for await (const _ of j.session().read()) { /* a replay's pass */ }
    // 2 body frames damaged, so 2 records incomplete: 4 damage events, each counted once.
    expect(j.stats().corruptFramesSkipped).toBe(4);
    expect(await o.metrics.getSingleMetricAsString('storeroute_journal_corrupt_frames_total')).toMatch(/kind="corrupt"} 2\n[^]*kind="incomplete"} 2/);
    const warnings = lines.filter((l) => l.level >= 40);
    expect(warnings.map((l) => l.msg)).toEqual(['journal_segment_damaged']);
    expect(warnings[0]).toMatchObject({ file, frames: 4, kinds: { corrupt: 2, incomplete: 2 } });
  });

  it('start-up logs one warning per damaged segment it recovers, and later reads add nothing', async () => {
    const file = await writeTen();
    const buf = await readFile(file);
    for (const id of ['r2@x', 'r5@x']) {
      const hit = buf.indexOf(id);
      buf[hit + 1] = buf[hit + 1]! ^ 0x20;
    }
    const crashed = join(dir, 'seg-00000001.open');
    await writeFile(crashed, buf.subarray(0, buf.length - 100)); // and a torn tail
    await unlink(file);
    const { logger, lines } = capturingLogger();
    const o = { logger, metrics: testRegistry() };
    const j = await start({}, {}, o);
    const warnings = () => lines.filter((l) => l.level >= 40);
    expect(warnings().map((l) => l.msg)).toEqual(['journal_segment_recovered']);
    expect(warnings()[0]).toMatchObject({ file: crashed, records: 7, frames: 5, kinds: { corrupt: 2, incomplete: 2, torn: 1 } });
    const counted = j.stats().corruptFramesSkipped;
    expect(counted).toBe(5);
    for (let pass = 0; pass < 2; pass++) expect(await readAll(j.read())).toHaveLength(7);
    expect(j.stats().corruptFramesSkipped).toBe(counted);
    expect(warnings()).toHaveLength(1);
  });

  it('a garbage segment file never stops start-up or delivery', async () => {
    await writeFile(join(dir, 'seg-00000005.open'), Buffer.from('SRJ1 this is not a journal at all'.repeat(100)));
    const fh = await open(join(dir, 'seg-00000006-1-2-3.seg'), 'w');
    await fh.write(Buffer.alloc(4096, 0xab));
    await fh.close();
    const j = await start();
    await journalOne(j, message('ok@x'), [recipient('a@example.com')], { messageId: '<ok@x>' });
    expect((await readAll(j.read())).map((r) => r.messageId)).toEqual(['<ok@x>']);
  });
});

describe('journal after kill -9', () => {
  it('keeps every record whose durable commit was acknowledged, and takes over the dead writer\'s lock', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'crash-writer.ts'), dir],
      { stdio: ['ignore', 'pipe', 'inherit'] });
    const acked: string[] = [];
    createInterface({ input: child.stdout! }).on('line', (l) => { if (l.startsWith('<')) acked.push(l); });
    try {
      await waitFor(() => acked.length >= 40, 15_000, '40 acknowledged commits');
    } finally {
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
    }
    const j = await start();
    const ids = new Set((await readAll(j.read())).map((r) => r.messageId));
    expect(acked.filter((id) => !ids.has(id))).toEqual([]);
    for await (const r of j.read()) expect(sha(await bodyOf(j, r))).toBe(r.sha256);
    await journalOne(j, message('after@x'), [recipient('a@example.com')]);
  }, 30_000);
});

describe('journal write errors', () => {
  it('a failing disk write rejects the commits it affects with 451, keeps what it acknowledged readable, and carries on in a new segment', async () => {
    // ulimit -f 512: no file may grow past 512 KiB, so the first segment starts failing (EFBIG).
    const script = join(import.meta.dirname, 'efbig-writer.ts');
    const child = spawn('bash', ['-c', `ulimit -f 512 && exec "${process.execPath}" --import tsx "${script}" "${dir}"`],
      { stdio: ['ignore', 'pipe', 'inherit'] });
    const lines: string[] = [];
    createInterface({ input: child.stdout! }).on('line', (l) => lines.push(l));
    const code = await new Promise((r) => child.once('exit', r));
    expect(code).toBe(0);
    expect(lines.at(-1)).toBe('done');
    const rejected = lines.filter((l) => l.startsWith('rejected'));
    expect(rejected.length).toBeGreaterThan(0);
    expect(rejected[0]).toMatch(/^rejected JOURNAL_UNAVAILABLE 451( said-failed)?$/);
    // failed() is the LMTP side's cue to withhold the final dot: whenever it says so, commit rejects.
    expect(lines.filter((l) => l.endsWith('(said failed)'))).toEqual([]);
    const lastRejected = lines.lastIndexOf(rejected.at(-1)!);
    expect(lines.slice(lastRejected + 1).filter((l) => l.startsWith('ok')).length).toBeGreaterThan(0);
    const okIds = lines.filter((l) => l.startsWith('ok ')).map((l) => l.slice(3));
    // Acknowledged records in the segment that failed stay readable while the journal runs
    // (replay needs them now, not after a restart).
    const live = new Set(lines.find((l) => l.startsWith('live '))!.slice(5).split(' '));
    expect(okIds.filter((id) => !live.has(id))).toEqual([]);
    const j = await start();
    const ids = new Set((await readAll(j.read())).map((r) => r.messageId));
    expect(okIds.filter((id) => !ids.has(id))).toEqual([]);
  }, 30_000);
});
