/** Shared set-up for journal tests: a temp dir, a parsed config, and helpers to write records. */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../src/config/index.js';
import type { Config } from '../../src/config/index.js';
import type { Journal, JournalRecipient } from '../../src/journal/index.js';
import { replies } from '../../src/core/replies.js';
import { pino, type Logger } from 'pino';

export async function tempDir(tag = 'journal'): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), `storeroute-${tag}-`));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export function journalConfig(dir: string, over: Record<string, unknown> = {}): Config['journal'] {
  return parseConfig({ journal: { dir, ...over } }).journal;
}

export function recipient(address: string, over: Partial<JournalRecipient> = {}): JournalRecipient {
  return { address, user: address.split('@')[0]!, store: 'store1', slot: 'slot1a', epoch: 1, reply: replies.delivered('2.1.5 ok'), ...over };
}

export function message(messageId: string, bodySize = 3000): Buffer {
  const head = `Message-ID: <${messageId}>\r\nSubject: test\r\n\r\n`;
  const fill = randomBytes(Math.ceil(bodySize / 2)).toString('hex').slice(0, Math.max(0, bodySize - head.length));
  return Buffer.from(head + fill.replace(/(.{76})/g, '$1\r\n') + '\r\n');
}

export const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Streams `body` through the sink in `chunk`-byte pieces, as the LMTP DATA path does, and commits. */
export async function journalOne(journal: Journal, body: Buffer, recipients: JournalRecipient[],
  opts: { chunk?: number; receivedAt?: Date; messageId?: string | null } = {}): Promise<void> {
  const entry = journal.begin({ queueId: 'Q' + randomBytes(3).toString('hex'), mailFrom: 'sender@example.org', receivedAt: opts.receivedAt ?? new Date() });
  const step = opts.chunk ?? 1000;
  for (let i = 0; i < body.length; i += step) entry.write(body.subarray(i, i + step));
  await entry.commit(recipients, { messageId: opts.messageId === undefined ? null : opts.messageId, size: body.length });
}

export async function readAll<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

export async function bodyOf(journal: Pick<Journal, 'openBody'>, record: Parameters<Journal['openBody']>[0]): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of journal.openBody(record)) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

/** A logger whose lines are kept (parsed) for the test to look at. */
export function capturingLogger(): { logger: Logger; lines: Array<Record<string, unknown> & { level: number; msg: string }> } {
  const lines: Array<Record<string, unknown> & { level: number; msg: string }> = [];
  const logger = pino({ level: 'debug' }, { write: (s: string) => { lines.push(JSON.parse(s) as (typeof lines)[number]); } });
  return { logger, lines };
}
