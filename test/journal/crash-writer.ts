/**
 * Child process for the kill -9 test: journals messages from 8 concurrent "sessions" forever,
 * streaming each body in small chunks across event-loop turns (so a kill lands mid-record), and
 * prints each Message-ID once its durable commit resolved, i.e. once we would have said 250.
 */
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { openJournal } from '../../src/journal/index.js';
import { journalConfig, message, recipient } from './helpers.js';

const dir = process.argv[2]!;
const journal = await openJournal(journalConfig(dir, { durability: 'durable', segmentBytes: 1024 * 1024 }),
  { logger: pino({ level: 'silent' }), metrics: new Registry() });
process.stdout.write('ready\n');
let n = 0;
async function session(): Promise<never> {
  for (;;) {
    const id = `<crash${n++}@test>`;
    const body = message(id.slice(1, -1), 100_000);
    const entry = journal.begin({ queueId: id, mailFrom: 's@x', receivedAt: new Date() });
    for (let i = 0; i < body.length; i += 4096) {
      entry.write(body.subarray(i, i + 4096));
      await new Promise((r) => setImmediate(r));
    }
    await entry.commit([recipient('a@example.com')], { messageId: id, size: body.length });
    process.stdout.write(`${id}\n`);
  }
}
await Promise.all(Array.from({ length: 8 }, session));
