/**
 * A RCPT whose deadline fires while its directory lookup still runs: the client has its 451 and
 * moves on (to more RCPTs, to DATA). When the lookup finally answers, that attempt must not touch
 * the transaction: no RCPT written into the message being streamed, no recipient added behind
 * postfix's back, no backend session opened for nothing. The lookup is slow for real: the Redis
 * directory is reached through a proxy that holds its bytes until the test lets them through.
 */
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { parseConfig } from '../../src/config/index.js';
import { createDirectory, type Directory } from '../../src/directory/index.js';
import { createLmtpServer, type LmtpServer } from '../../src/lmtp/index.js';
import { startLmtpBackend, type LmtpBackend } from '../helpers/lmtp-backend.js';
import { startRedis, uniquePrefix, type RedisServer } from '../helpers/redis.js';
import { testRegistry } from '../helpers/logger.js';
import { waitFor } from '../helpers/ports.js';
import { startGateProxy, type GateProxy } from './gate-proxy.js';
import { WireClient } from './wire-client.js';

let redis: RedisServer;
let gate: GateProxy;
let a1: LmtpBackend;
let b1: LmtpBackend;
let writer: Directory;
let directory: Directory;
let server: LmtpServer;
let c: WireClient;
const logLines: Array<{ msg: string; rcpt?: string; stage?: string }> = [];

beforeEach(async () => {
  redis = await startRedis();
  gate = await startGateProxy(redis.port);
  [a1, b1] = await Promise.all([startLmtpBackend(), startLmtpBackend()]);
  const keyPrefix = uniquePrefix('stale');
  const obs = { logger: pino({ level: 'debug' }, new Writable({ write(chunk: Buffer, _e, cb) { logLines.push(JSON.parse(chunk.toString())); cb(); } })),
    metrics: testRegistry() };
  const config = parseConfig({
    // No cache: every lookup goes through the gate. The lookup may take 5 s, the RCPT only 300 ms.
    directory: { backend: 'redis', redis: { url: `redis://127.0.0.1:${gate.port}`, keyPrefix, commandTimeoutMs: 5_000 },
      cache: { enabled: false } },
    lmtp: { listen: { host: '127.0.0.1', port: 0 }, hostname: 'proxy.test', rcptDeadlineMs: 300 },
  });
  writer = await createDirectory({ ...config.directory, redis: { ...config.directory.redis, url: redis.url } }, obs);
  await writer.createSlot({ name: 'a1', machine: 'm1', ip: '127.0.0.1', lmtp: a1.port }, 'test');
  await writer.createSlot({ name: 'a2', machine: 'm2', ip: '127.0.0.1', lmtp: a1.port }, 'test');
  await writer.createSlot({ name: 'b1', machine: 'm3', ip: '127.0.0.1', lmtp: b1.port }, 'test');
  await writer.createSlot({ name: 'b2', machine: 'm4', ip: '127.0.0.1', lmtp: b1.port }, 'test');
  await writer.createStore({ name: 's1', slots: ['a1', 'a2'], preferredMaster: 'a1' }, 'test');
  await writer.createStore({ name: 's2', slots: ['b1', 'b2'], preferredMaster: 'b1' }, 'test');
  for (const [name, store] of [['dave', 's1'], ['alice', 's1'], ['slow', 's1'], ['slowb', 's2']]) {
    await writer.createUser({ name: name!, store: store! }, 'test');
  }
  directory = await createDirectory(config.directory, obs);
  server = createLmtpServer({ config: config.lmtp, journalConfig: config.journal, directory, obs });
  c = (await WireClient.open((await server.listen()).port!)).client;
  await c.cmd('LHLO postfix.test');
});

afterEach(async () => {
  c.close();
  await server.close(0);
  await directory.close();
  await writer.close();
  await Promise.all([a1.close(), b1.close(), gate.close()]);
  await redis.close();
  logLines.length = 0;
});

describe('RCPT abandoned at its deadline', () => {
  it('never touches the transaction when its lookup answers after DATA started', async () => {
    a1.behaviour = { final: (a) => (a.startsWith('dave') ? { code: 452, text: '4.2.2 Over quota' } : 'accept') };
    expect(await c.cmd('MAIL FROM:<s@x.org>')).toBe('250 2.1.0 Accepted');
    expect(await c.cmd('RCPT TO:<dave@example.com>')).toBe('250 2.1.5 Accepted');
    expect(await c.cmd('RCPT TO:<alice@example.com>')).toBe('250 2.1.5 Accepted');
    gate.hold();
    // Same store as dave and alice (its backend session is about to carry the message) and another.
    expect(await c.cmd('RCPT TO:<slow@example.com>')).toBe('451 4.3.0 Temporary internal error, try again later');
    expect(await c.cmd('RCPT TO:<slowb@example.com>')).toBe('451 4.3.0 Temporary internal error, try again later');
    expect(gate.heldBytes).toBeGreaterThan(0); // both lookups are still waiting for Redis
    expect(await c.cmd('DATA')).toBe('354 End data with <CR><LF>.<CR><LF>');
    c.write('Subject: t\r\n\r\nline1\r\n');
    gate.release();
    await waitFor(() => logLines.filter((l) => l.msg === 'lmtp_rcpt_stale_dropped').length === 2, 5_000, 'both stale attempts dropped');
    expect(logLines.filter((l) => l.msg === 'lmtp_rcpt_stale_dropped').map((l) => [l.rcpt, l.stage]).sort())
      .toEqual([['slow@example.com', 'lookup'], ['slowb@example.com', 'lookup']]);
    c.write('line2\r\n.\r\n');
    expect(await c.replies(2)).toEqual(['452 4.2.2 Over quota', '250 2.1.5 Delivered to 2 mailbox(es)']);
    // The next transaction on the same client session is in lock-step too.
    expect((await c.send('s@x.org', ['alice@example.com'], Buffer.from('Subject: n\r\n\r\nnext\r\n'))).finals)
      .toEqual(['250 2.1.5 Delivered to 1 mailbox(es)']);
    expect(a1.messages.map((m) => [m.recipients, m.body.toString()])).toEqual([
      [['dave@example.com', 'alice@example.com'], 'Subject: t\r\n\r\nline1\r\nline2\r\n'],
      [['alice@example.com'], 'Subject: n\r\n\r\nnext\r\n'],
    ]);
    expect(b1.connections()).toBe(0); // no session opened for the stale attempt on the other store
  });
});
