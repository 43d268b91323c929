/**
 * Every RCPT refused or deferred leaves one lmtp_rcpt_rejected line (queue id, recipient, reply,
 * stable reason) and is counted in storeroute_lmtp_rcpt_rejects_total; the lines are
 * rate-limited, with one count line for what was left out.
 */
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { parseConfig } from '../../src/config/index.js';
import { createDirectory } from '../../src/directory/index.js';
import { createLmtpServer } from '../../src/lmtp/index.js';
import { RcptRejectLog } from '../../src/lmtp/reject-log.js';
import { replies } from '../../src/core/replies.js';
import { addStoreAt, startFixture, type Fixture } from './fixture.js';
import { WireClient } from './wire-client.js';
import { startRawBackend, type RawBackend } from './raw-backend.js';
import { startRedis, uniquePrefix } from '../helpers/redis.js';
import { testRegistry } from '../helpers/logger.js';
import { waitFor } from '../helpers/ports.js';

type Line = { level: number; msg: string; [field: string]: unknown };
function capturingLogger() {
  const lines: Line[] = [];
  const out = new Writable({ write(chunk: Buffer, _enc, cb) { lines.push(JSON.parse(chunk.toString()) as Line); cb(); } });
  return { logger: pino({ level: 'info' }, out), lines };
}
const rejected = (lines: Line[]) => lines.filter((l) => l.msg === 'lmtp_rcpt_rejected')
  .map(({ queueId, recipient, reply, reason, detail }) => ({ queueId, recipient, reply, reason, ...(detail ? { detail } : {}) }));

let fx: Fixture | null = null;
let cy: RawBackend | null = null;
let c: WireClient | null = null;
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  c?.close();
  await cy?.close();
  await fx?.close();
  for (const f of cleanups.splice(0)) await f();
  fx = null; cy = null; c = null;
});

describe('lmtp_rcpt_rejected', () => {
  it('one line per refused RCPT, whoever refused it; the 501 is counted in the metric too', async () => {
    const { logger, lines } = capturingLogger();
    fx = await startFixture({ logger, lmtp: { rcptDeadlineMs: 2_000 } });
    await fx.directory.setStoreState('s2', 'down', 'test');
    fx.be.c1.behaviour = { rcpt: () => ({ code: 452, text: '4.2.2 Mailbox is full' }) };
    c = (await WireClient.open(fx.port)).client;
    await c.cmd('LHLO postfix.test');
    expect(await c.cmd('XFORWARD IDENT=4Xq1ABC')).toMatch(/^250 /);
    expect(await c.cmd('MAIL FROM:<s@x.org>')).toBe('250 2.1.0 Accepted');
    const answers: string[] = [];
    for (const a of ['nobody@example.com', 'bob@example.com', 'carol@example.com', 'alice@example.com',
      'ALICE@example.com', 'zed@xn--a-ecp.example']) answers.push(await c.cmd(`RCPT TO:<${a}>`));
    expect(answers).toEqual([
      '550 5.1.1 No such user here',
      '451 4.3.0 Mailbox store is down, try again later',
      '452 4.2.2 Mailbox is full',
      '250 2.1.5 Accepted',
      '452 4.5.3 Duplicate recipient in this transaction, send it again separately',
      '501 5.1.3 Bad recipient address syntax', // not a valid IDN once smtp-server decoded it
    ]);
    const q = '4Xq1ABC';
    expect(rejected(lines)).toEqual([
      { queueId: q, recipient: 'nobody@example.com', reply: '550 5.1.1 No such user here', reason: 'UNKNOWN_USER', detail: 'unknown user' },
      { queueId: q, recipient: 'bob@example.com', reply: '451 4.3.0 Mailbox store is down, try again later', reason: 'STORE_DOWN', detail: 'store down' },
      { queueId: q, recipient: 'carol@example.com', reply: '452 4.2.2 Mailbox is full', reason: 'BACKEND_REFUSED_RCPT', detail: 'slot c1' },
      { queueId: q, recipient: 'ALICE@example.com', reply: '452 4.5.3 Duplicate recipient in this transaction, send it again separately',
        reason: 'DUPLICATE_RECIPIENT' },
      { queueId: q, recipient: 'zed@a⒈.example', reply: '501 5.1.3 Bad recipient address syntax', reason: 'RCPT_SYNTAX' },
    ]);
    const metrics = await fx.registry.metrics();
    expect(metrics).toMatch(/storeroute_lmtp_rcpt_rejects_total\{class="5xx"\} 2\n/);
    expect(metrics).toMatch(/storeroute_lmtp_rcpt_rejects_total\{class="4xx"\} 3\n/);
  });

  it("a backend's 421 at RCPT: 451 4.4.2 on the wire, the backend's own line in the detail", async () => {
    const { logger, lines } = capturingLogger();
    fx = await startFixture({ logger });
    cy = await startRawBackend({ rcpt: () => ['421 4.3.2 lmtpd shutting down'] });
    await addStoreAt(fx, cy.port, 'cy', ['zoe']);
    c = (await WireClient.open(fx.port)).client;
    await c.cmd('LHLO postfix.test');
    await c.cmd('MAIL FROM:<s@x.org>');
    expect(await c.cmd('RCPT TO:<zoe@example.com>')).toBe('451 4.4.2 Connection to mailbox server lost, try again later');
    expect(rejected(lines)).toEqual([{ queueId: expect.stringMatching(/\.1$/), recipient: 'zoe@example.com',
      reply: '451 4.4.2 Connection to mailbox server lost, try again later', reason: 'BACKEND_LOST',
      detail: `slot cym (127.0.0.1:${cy.port}) is closing the session: 421 4.3.2 lmtpd shutting down` }]);
  });

  it('the recipient limit is ours: 452 4.5.3, logged and counted like any other refusal', async () => {
    const { logger, lines } = capturingLogger();
    fx = await startFixture({ logger, lmtp: { maxRecipients: 1 } });
    c = (await WireClient.open(fx.port)).client;
    await c.cmd('LHLO postfix.test');
    const r = await c.send('s@x.org', ['alice@example.com', 'bob@example.com'], Buffer.from('Subject: x\r\n\r\nx\r\n'));
    expect(r.rcpt).toEqual(['250 2.1.5 Accepted', '452 4.5.3 Too many recipients']);
    expect(r.finals).toEqual(['250 2.1.5 Delivered to 1 mailbox(es)']);
    expect(rejected(lines)).toEqual([{ queueId: expect.stringMatching(/\.1$/), recipient: 'bob@example.com',
      reply: '452 4.5.3 Too many recipients', reason: 'TOO_MANY_RECIPIENTS' }]);
    expect(await fx.registry.metrics()).toMatch(/storeroute_lmtp_rcpt_rejects_total\{class="4xx"\} 1\n/);
  });

  it('directory down: 451 4.3.0 with reason DIRECTORY_UNAVAILABLE and the error as detail', async () => {
    const { logger, lines } = capturingLogger();
    const redis = await startRedis();
    cleanups.push(() => redis.close());
    const config = parseConfig({
      directory: { backend: 'redis', redis: { url: redis.url, keyPrefix: uniquePrefix('rej'), commandTimeoutMs: 300, connectTimeoutMs: 300 } },
      lmtp: { listen: { host: '127.0.0.1', port: 0 }, hostname: 'proxy.test' },
    });
    const obs = { logger, metrics: testRegistry() };
    const directory = await createDirectory(config.directory, obs);
    const server = createLmtpServer({ config: config.lmtp, journalConfig: config.journal, directory, obs });
    cleanups.unshift(async () => { await server.close(0); await directory.close(); });
    const { port } = await server.listen();
    await redis.stop();
    c = (await WireClient.open(port!)).client;
    await c.cmd('LHLO postfix.test');
    await c.cmd('MAIL FROM:<s@x.org>');
    expect(await c.cmd('RCPT TO:<alice@example.com>')).toBe('451 4.3.0 Directory temporarily unavailable, try again later');
    const [line] = rejected(lines);
    expect(line).toMatchObject({ recipient: 'alice@example.com', reply: '451 4.3.0 Directory temporarily unavailable, try again later',
      reason: 'DIRECTORY_UNAVAILABLE', detail: expect.stringMatching(/^directory: /) });
  });
});

describe('RcptRejectLog rate limit', () => {
  const rejection = (i: number) => ({ queueId: 'Q', recipient: `u${i}@example.com`, reply: replies.noSuchUser(), reason: 'UNKNOWN_USER' as const });

  it('writes at most perWindow lines; the rest is one count line when flushed', () => {
    const { logger, lines } = capturingLogger();
    const log = new RcptRejectLog(logger, { perWindow: 3, windowMs: 60_000 });
    for (let i = 0; i < 10; i++) log.write(rejection(i));
    expect(rejected(lines).map((l) => l.recipient)).toEqual(['u0@example.com', 'u1@example.com', 'u2@example.com']);
    expect(lines.filter((l) => l.msg === 'lmtp_rcpt_rejected_suppressed')).toEqual([]);
    log.flush();
    expect(lines.filter((l) => l.msg === 'lmtp_rcpt_rejected_suppressed').map((l) => [l.level, l.suppressed]))
      .toEqual([[40, 7]]);
    log.flush(); // nothing new left out: no second count line
    expect(lines.filter((l) => l.msg === 'lmtp_rcpt_rejected_suppressed')).toHaveLength(1);
  });

  it('reports the count by itself when the window ends, then writes lines again', async () => {
    const { logger, lines } = capturingLogger();
    const log = new RcptRejectLog(logger, { perWindow: 2, windowMs: 50 });
    for (let i = 0; i < 5; i++) log.write(rejection(i));
    const count = await waitFor(() => lines.find((l) => l.msg === 'lmtp_rcpt_rejected_suppressed'), 2_000, 'the count line');
    expect(count.suppressed).toBe(3);
    log.write(rejection(5));
    expect(rejected(lines).map((l) => l.recipient)).toEqual(['u0@example.com', 'u1@example.com', 'u5@example.com']);
  });
});
