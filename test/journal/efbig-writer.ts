/**
 * Child process for the write-error test, run under `ulimit -f` so that segment writes fail with
 * EFBIG partway: journals 60 records of 20 KB one after another and prints "ok <id>" or
 * "rejected <code> <LMTP reply code>" for each commit, then "live <ids>" (what a read of the running journal finds:
 * what replay would see) and "done". It must never crash.
 */
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { openJournal } from '../../src/journal/index.js';
import { lmtpReplyFor } from '../../src/lmtp/index.js';
import { journalConfig, message, recipient } from './helpers.js';

const journal = await openJournal(journalConfig(process.argv[2]!, { durability: 'durable', segmentBytes: 4 * 1024 * 1024 }),
  { logger: pino({ level: 'silent' }), metrics: new Registry() });
for (let i = 0; i < 60; i++) {
  const id = `<efbig${i}@test>`;
  const body = message(id.slice(1, -1), 20_000);
  const entry = journal.begin({ queueId: id, mailFrom: 's@x', receivedAt: new Date() });
  entry.write(body);
  // What the LMTP side asks before sending the final dot (a write error surfaces asynchronously).
  await new Promise((r) => setImmediate(r));
  const failedBefore = entry.failed?.() === true;
  try {
    await entry.commit([recipient('a@example.com')], { messageId: id, size: body.length });
    process.stdout.write(`ok ${id}${failedBefore ? ' (said failed)' : ''}\n`);
  } catch (err) {
    process.stdout.write(`rejected ${(err as { code?: string }).code} ${lmtpReplyFor(err).code}${failedBefore ? ' said-failed' : ''}\n`);
  }
  // Give a failed segment's replacement time to open, as real traffic would.
  await new Promise((r) => setTimeout(r, 5));
}
const live: string[] = [];
for await (const r of journal.read()) live.push(r.messageId ?? '');
process.stdout.write(`live ${live.join(' ')}\n`);
await journal.close();
process.stdout.write('done\n');
