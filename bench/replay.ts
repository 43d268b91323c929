/**
 * Replay speed: 10,000 journaled 4 KB messages re-delivered to a local `smtp-sink -L` standing in
 * for the new master (IMAP check off: the sink has no IMAP), with the default concurrency.
 * Reference in the same run: `smtp-source -L` sending the same number of messages of the same
 * size straight to the sink at the same concurrency, one connection per message (as replay does).
 *
 *   npx tsx bench/replay.ts [--messages N]
 *
 * Target (issue #4): 10,000 messages in under 30 s.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { parseConfig } from '../src/config/index.js';
import { createDirectory } from '../src/directory/index.js';
import { openJournal } from '../src/journal/index.js';
import { replayStore } from '../src/replay/index.js';
import { replies } from '../src/core/replies.js';
import { smtpSource, startSink } from './lmtp.js';

function machine(): string {
  return `${cpus()[0]?.model ?? '?'}, ${cpus().length} cpus, node ${process.version}`;
}

function body(i: number): Buffer {
  const head = `Message-ID: <bench${i}@replay.test>\r\nFrom: a@b\r\nSubject: replay ${i}\r\n\r\n`;
  const line = randomBytes(38).toString('hex') + '\r\n';
  return Buffer.from(head + line.repeat(Math.ceil((4096 - head.length) / line.length)));
}

async function main(): Promise<void> {
  const arg = process.argv.indexOf('--messages');
  const n = arg > 0 ? Number(process.argv[arg + 1]) : 10_000;
  const tmp = await mkdtemp(join(tmpdir(), 'sr-bench-replay-'));
  const obs = { logger: pino({ level: 'error' }), metrics: new Registry() };
  const config = parseConfig({
    directory: { embedded: { file: join(tmp, 'directory.json') } },
    journal: { dir: join(tmp, 'journal'), durability: 'off', retentionMs: 3_600_000 },
  });
  console.log(`bench/replay — ${machine()}; ${n} messages of 4 KB, replay.concurrency ${config.replay.concurrency}`);
  const sink = await startSink();
  const directory = await createDirectory(config.directory, obs);
  await directory.createSlot({ name: 'old', machine: 'm1', ip: '127.0.0.1', lmtp: 1 }, 'bench');
  await directory.createSlot({ name: 'sink', machine: 'm2', ip: '127.0.0.1', lmtp: sink.port }, 'bench');
  await directory.createStore({ name: 'store1', slots: ['old', 'sink'], preferredMaster: 'old' }, 'bench');
  await directory.failover('store1', { to: 'sink', force: true }, 'bench');

  const journal = await openJournal(config.journal, obs);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    const b = body(i);
    const e = journal.begin({ queueId: `Q${i}`, mailFrom: 'src@sender.test', receivedAt: new Date() });
    e.write(b);
    await e.commit([{ address: `u${i % 100}@bench.test`, user: `u${i % 100}`, store: 'store1', slot: 'old', epoch: 0,
      reply: replies.delivered() }], { messageId: `<bench${i}@replay.test>`, size: b.length });
  }
  const journalSeconds = Number(process.hrtime.bigint() - t0) / 1e9;

  const t1 = process.hrtime.bigint();
  const summary = await replayStore({ journal, directory, store: 'store1', check: false, actor: 'bench', imap: config.replay, obs });
  const replaySeconds = Number(process.hrtime.bigint() - t1) / 1e9;

  const directSeconds = await smtpSource(sink.port, { size: 4096, sessions: config.replay.concurrency, messages: n, rcpts: 1, reuse: false });

  console.log(`journal write:  ${n} records in ${journalSeconds.toFixed(2)} s`);
  console.log(`replay:         ${summary.delivered} delivered, ${summary.failed} failed of ${summary.selected} in ${replaySeconds.toFixed(2)} s`
    + ` (${(n / replaySeconds).toFixed(0)} msg/s)  target < 30 s`);
  console.log(`reference:      smtp-source -L -s ${config.replay.concurrency} (conn/msg) → smtp-sink -L: ${directSeconds.toFixed(2)} s`
    + ` (${(n / directSeconds).toFixed(0)} msg/s)`);
  await journal.close();
  await directory.close();
  await sink.stop();
  await rm(tmp, { recursive: true, force: true });
}

main().catch((err: unknown) => { console.error(err); process.exit(1); });
