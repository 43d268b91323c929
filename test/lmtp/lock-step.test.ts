/** Postfix's lock-step: every command one reply, and one final reply per RCPT it heard 250 for. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startFixture, type Fixture } from './fixture.js';
import { WireClient } from './wire-client.js';

let fx: Fixture;
let c: WireClient;
beforeEach(async () => {
  fx = await startFixture();
  c = (await WireClient.open(fx.port)).client;
  await c.cmd('LHLO postfix.test');
});
afterEach(async () => { c.close(); await fx.close(); });

describe('LMTP lock-step', () => {
  it('a second RCPT for the same envelope entry (differing only in case) is deferred 452 4.5.3, keeping one final per 250', async () => {
    c.write([
      'MAIL FROM:<s@x.org>', 'RCPT TO:<Alice@example.com>', 'RCPT TO:<alice@example.com>', 'RCPT TO:<ALICE@EXAMPLE.COM>',
      'RCPT TO:<bob@example.com>', 'DATA', 'Subject: one\r\n\r\nfirst\r\n.',
      'MAIL FROM:<s@x.org>', 'RCPT TO:<alice@example.com>', 'DATA', 'Subject: two\r\n\r\nsecond\r\n.', 'NOOP', '',
    ].join('\r\n'));
    expect(await c.replies(12)).toEqual([
      '250 2.1.0 Accepted',
      '250 2.1.5 Accepted',
      '452 4.5.3 Duplicate recipient in this transaction, send it again separately',
      '452 4.5.3 Duplicate recipient in this transaction, send it again separately',
      '250 2.1.5 Accepted',
      '354 End data with <CR><LF>.<CR><LF>',
      '250 2.1.5 Delivered to 1 mailbox(es)',
      '250 2.1.5 Delivered to 1 mailbox(es)',
      '250 2.1.0 Accepted',
      '250 2.1.5 Accepted',
      '354 End data with <CR><LF>.<CR><LF>',
      '250 2.1.5 Delivered to 1 mailbox(es)',
    ]);
    expect(await c.reply()).toBe('250 2.0.0 OK');
    expect(fx.be.a1.messages.map((m) => [m.recipients, m.body.toString()])).toEqual([
      [['Alice@example.com'], 'Subject: one\r\n\r\nfirst\r\n'],
      [['alice@example.com'], 'Subject: two\r\n\r\nsecond\r\n'],
    ]);
  });
});
