/**
 * Address forms at RCPT: quoted local parts. smtp-server (3.21.6) checks addresses itself before
 * our handlers run and is not quote-aware: a quoted local part with a space, an "@" or ".." is
 * answered 501 5.1.3 by it although RFC 5321 allows it (Cyrus would take it). Pinned here so a
 * change in smtp-server is noticed; postfix bounces such a recipient with the 501 in the DSN. Quoted forms it lets through are routed like their unquoted equivalent.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startFixture, type Fixture } from './fixture.js';
import { WireClient } from './wire-client.js';

let fx: Fixture;
let c: WireClient;
beforeEach(async () => {
  fx = await startFixture();
  c = (await WireClient.open(fx.port)).client;
  await c.cmd('LHLO postfix.test');
  expect(await c.cmd('MAIL FROM:<s@x.org>')).toBe('250 2.1.0 Accepted');
});
afterEach(async () => { c.close(); await fx.close(); });

describe('quoted local parts', () => {
  it('are routed like the unquoted address; the backend gets them as given', async () => {
    expect(await c.cmd('RCPT TO:<"Alice"@example.com>')).toBe('250 2.1.5 Accepted');
    expect(await c.cmd('RCPT TO:<"bob+x"@example.com>')).toBe('250 2.1.5 Accepted');
    expect(await c.cmd('DATA')).toBe('354 End data with <CR><LF>.<CR><LF>');
    c.write('Subject: q\r\n\r\nx\r\n.\r\n');
    expect(await c.replies(2)).toEqual(Array(2).fill('250 2.1.5 Delivered to 1 mailbox(es)'));
    expect(fx.be.a1.messages[0]!.recipients).toEqual(['"Alice"@example.com']);
    expect(fx.be.b1.messages[0]!.recipients).toEqual(['"bob+x"@example.com']);
  });

  it("smtp-server's own check answers 501 5.1.3 for quoted forms it cannot parse (documented limitation)", async () => {
    for (const a of ['"john..doe"@example.com', '"john doe"@example.com', '"a@b"@example.com']) {
      expect(await c.cmd(`RCPT TO:<${a}>`)).toBe('501 5.1.3 Error: Bad recipient address syntax');
    }
    expect(await c.cmd('RCPT TO:<alice@example.com>')).toBe('250 2.1.5 Accepted'); // the transaction goes on
  });
});
