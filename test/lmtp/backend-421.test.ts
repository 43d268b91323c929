/**
 * A backend's 421 ("closing the channel") at any stage: a 4xx for that backend's recipients only,
 * its session dropped from the pool, and the client session goes on (smtp-server closes the
 * client connection on any 421 it sends, so relaying one would defer every other store's
 * recipients and, after the dot, make postfix retry mail a healthy store already took).
 * Two stores in one transaction: s1 (alice) on a healthy smtp-server backend, cy (zed, zoe) on a
 * raw backend that answers 421 on its first connection and then closes it.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { addStoreAt, startFixture, type Fixture } from './fixture.js';
import { WireClient } from './wire-client.js';
import { startRawBackend, type RawBackend, type RawBackendOptions } from './raw-backend.js';

const CLOSING = '421 4.3.2 lmtpd shutting down';
const LOST = '451 4.4.2 Connection to mailbox server lost, try again later';
const ACCEPTED = '250 2.1.5 Accepted';
const GO = '354 End data with <CR><LF>.<CR><LF>';
const HEALTHY = '250 2.1.5 Delivered to 1 mailbox(es)';
const RAW_OK = '250 2.1.5 Ok SESSIONID=<raw>';
const msg = (s: string) => Buffer.from(`Subject: ${s}\r\n\r\n${s}\r\n`);

let fx: Fixture;
let cy: RawBackend | null = null;
let c: WireClient;
beforeEach(async () => {
  fx = await startFixture({ lmtp: { rcptDeadlineMs: 2_000 } });
  c = (await WireClient.open(fx.port)).client;
  await c.cmd('LHLO postfix.test');
});
afterEach(async () => { c.close(); await cy?.close(); cy = null; await fx.close(); });

async function withRaw(opts: RawBackendOptions): Promise<RawBackend> {
  cy = await startRawBackend(opts);
  await addStoreAt(fx, cy.port, 'cy', ['zed', 'zoe']);
  return cy;
}

/** The same client session carries a next transaction to both stores, on a new session to cy. */
async function nextTransactionWorks(be: RawBackend): Promise<void> {
  expect(await c.send('s@x.org', ['alice@example.com', 'zed@example.com', 'zoe@example.com'], msg('next'))).toEqual({
    mail: '250 2.1.0 Accepted', rcpt: [ACCEPTED, ACCEPTED, ACCEPTED], data: GO, finals: [HEALTHY, RAW_OK, RAW_OK] });
  expect(be.connections.length).toBe(2); // the session that said 421 was not reused
  expect(fx.be.a1.connections()).toBe(1); // the healthy one was
  expect(c.closed).toBe(false);
}

describe('a backend answering 421', () => {
  it('at RCPT: that RCPT and its store\'s earlier recipients get 451 4.4.2, the other store delivers', async () => {
    const be = await withRaw({ rcpt: (a, conn) => (conn.id === 1 && a.startsWith('zoe') ? [CLOSING] : ['250 2.1.5 ok']) });
    expect(await c.send('s@x.org', ['alice@example.com', 'zed@example.com', 'zoe@example.com'], msg('first'))).toEqual({
      mail: '250 2.1.0 Accepted', rcpt: [ACCEPTED, ACCEPTED, LOST], data: GO, finals: [HEALTHY, LOST] });
    expect(be.connections[0]!.lines.at(-1)).toBe('RCPT TO:<zoe@example.com>'); // nothing written after the 421
    expect(fx.be.a1.messages.map((m) => m.recipients)).toEqual([['alice@example.com']]);
    await nextTransactionWorks(be);
    expect(be.messages.map(String)).toEqual([msg('next').toString()]);
  });

  it('at MAIL: the store\'s recipients get 451 4.4.2, the other store delivers', async () => {
    const be = await withRaw({ mail: (conn) => (conn.id === 1 ? [CLOSING] : ['250 2.1.0 ok']) });
    expect(await c.send('s@x.org', ['alice@example.com', 'zed@example.com'], msg('first'))).toEqual({
      mail: '250 2.1.0 Accepted', rcpt: [ACCEPTED, LOST], data: GO, finals: [HEALTHY] });
    expect(be.connections[0]!.lines.at(-1)).toBe('RCPT TO:<zed@example.com>'); // pipelined with the MAIL
    await nextTransactionWorks(be);
  });

  it('at MAIL on a pooled session (its idle close racing our MAIL): retried once on a new session', async () => {
    const mails = (conn: { lines: string[] }) => conn.lines.filter((l) => l.startsWith('MAIL')).length;
    const be = await withRaw({ mail: (conn) => (conn.id === 1 && mails(conn) === 2 ? [CLOSING] : ['250 2.1.0 ok']) });
    expect((await c.send('s@x.org', ['zed@example.com'], msg('first'))).finals).toEqual([RAW_OK]);
    expect(await c.send('s@x.org', ['alice@example.com', 'zed@example.com'], msg('second'))).toEqual({
      mail: '250 2.1.0 Accepted', rcpt: [ACCEPTED, ACCEPTED], data: GO, finals: [HEALTHY, RAW_OK] });
    expect(be.connections.length).toBe(2);
    expect(be.messages.map(String)).toEqual([msg('first').toString(), msg('second').toString()]);
  });

  it('at DATA (instead of 354): the store\'s recipients get 451 4.4.2, the other store delivers', async () => {
    const be = await withRaw({ data: (conn) => (conn.id === 1 ? [CLOSING] : null) });
    expect(await c.send('s@x.org', ['alice@example.com', 'zed@example.com'], msg('first'))).toEqual({
      mail: '250 2.1.0 Accepted', rcpt: [ACCEPTED, ACCEPTED], data: GO, finals: [HEALTHY, LOST] });
    expect(be.messages).toEqual([]);
    expect(fx.be.a1.messages.map((m) => m.body.toString())).toEqual([msg('first').toString()]);
    await nextTransactionWorks(be);
  });

  it('after the dot, for one recipient: that one gets 451 4.4.2, every other keeps its own reply', async () => {
    const be = await withRaw({ final: (a, conn) => (conn.id === 1 && a.startsWith('zed') ? CLOSING : RAW_OK) });
    expect(await c.send('s@x.org', ['alice@example.com', 'zoe@example.com', 'zed@example.com'], msg('first'))).toEqual({
      mail: '250 2.1.0 Accepted', rcpt: [ACCEPTED, ACCEPTED, ACCEPTED], data: GO, finals: [HEALTHY, RAW_OK, LOST] });
    await nextTransactionWorks(be);
    // postfix heard 250 for alice and zoe, so the retry of zed alone is the only copy sent again.
    expect(fx.be.a1.messages.map((m) => m.body.toString())).toEqual([msg('first').toString(), msg('next').toString()]);
  });
});
