/** A pooled backend session that died while idle is found out by using it: one retry on a fresh one. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startFixture, type Fixture } from './fixture.js';
import { WireClient } from './wire-client.js';

let fx: Fixture;
let c: WireClient;
const msg = (s: string) => Buffer.from(`Subject: ${s}\r\n\r\n${s}\r\n`);
beforeEach(async () => {
  fx = await startFixture();
  c = (await WireClient.open(fx.port)).client;
  await c.cmd('LHLO postfix.test');
  expect((await c.send('s@x.org', ['alice@example.com'], msg('first'))).finals).toEqual(['250 2.1.5 Delivered to 1 mailbox(es)']);
});
afterEach(async () => { c.close(); await fx.close(); });

describe('reused backend session', () => {
  it('closed before answering the MAIL of the next transaction: the RCPT is sent again on a new session', async () => {
    fx.be.a1.behaviour = { mail: (conn) => (conn === 1 ? 'drop' : 'accept') };
    const r = await c.send('s@x.org', ['alice@example.com', 'bob@example.com'], msg('second'));
    expect(r).toEqual({ mail: '250 2.1.0 Accepted', rcpt: ['250 2.1.5 Accepted', '250 2.1.5 Accepted'],
      data: '354 End data with <CR><LF>.<CR><LF>', finals: Array(2).fill('250 2.1.5 Delivered to 1 mailbox(es)') });
    expect(fx.be.a1.messages.map((m) => [m.connection, m.body.toString()])).toEqual([[1, msg('first').toString()], [2, msg('second').toString()]]);
    expect(fx.be.a1.connections()).toBe(2);
  });

  it('is not retried once it acknowledged part of the transaction (a RCPT accepted, dropped at the next)', async () => {
    fx.be.a1.behaviour = { rcpt: (a) => (a.startsWith('dave') ? 'drop' : 'accept') };
    expect(await c.cmd('MAIL FROM:<s@x.org>')).toBe('250 2.1.0 Accepted');
    expect(await c.cmd('RCPT TO:<alice@example.com>')).toBe('250 2.1.5 Accepted');
    expect(await c.cmd('RCPT TO:<dave@example.com>')).toBe('451 4.4.2 Connection to mailbox server lost, try again later');
    expect(await c.cmd('DATA')).toBe('354 End data with <CR><LF>.<CR><LF>');
    c.write('Subject: x\r\n\r\nx\r\n.\r\n');
    expect(await c.reply()).toBe('451 4.4.2 Connection to mailbox server lost, try again later');
    expect(fx.be.a1.connections()).toBe(1);
  });

  it('is retried once only: a new session that dies too gives 451 4.4.2', async () => {
    fx.be.a1.behaviour = { mail: () => 'drop' };
    expect(await c.cmd('MAIL FROM:<s@x.org>')).toBe('250 2.1.0 Accepted');
    expect(await c.cmd('RCPT TO:<alice@example.com>')).toBe('451 4.4.2 Connection to mailbox server lost, try again later');
    expect(fx.be.a1.connections()).toBe(2);
  });
});
