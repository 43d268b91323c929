/**
 * Internationalised domains: postfix sends A-labels (xn--…), smtp-server hands us Unicode, the
 * backend (Cyrus without SMTPUTF8) and the directory want A-labels again.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { addStoreAt, startFixture, type Fixture } from './fixture.js';
import { WireClient } from './wire-client.js';
import { startRawBackend, type RawBackend } from './raw-backend.js';

let fx: Fixture;
let cy: RawBackend;
let c: WireClient;
beforeEach(async () => {
  // One local domain written as A-labels, one in Unicode: both must match.
  fx = await startFixture({ lmtp: { localDomains: ['xn--mnchen-3ya.example', 'Bücher.example'] } });
  cy = await startRawBackend();
  await addStoreAt(fx, cy.port, 'cy', ['zed', 'anna@xn--mnchen-3ya.example']);
  c = (await WireClient.open(fx.port)).client;
  await c.cmd('LHLO postfix.test');
});
afterEach(async () => { c.close(); await cy.close(); await fx.close(); });

describe('IDN domains', () => {
  it('reach the directory and the backend as A-labels, exactly as postfix sent them', async () => {
    c.write(['MAIL FROM:<s@xn--bcher-kva.example>', 'RCPT TO:<zed@xn--mnchen-3ya.example>',
      'RCPT TO:<Zed+x@XN--BCHER-KVA.example>', 'RCPT TO:<anna@xn--mnchen-3ya.example>', 'RCPT TO:<zed@other.example>',
      'DATA', 'Subject: idn\r\n\r\nhello\r\n.', ''].join('\r\n'));
    expect(await c.replies(9)).toEqual([
      '250 2.1.0 Accepted',
      '250 2.1.5 Accepted',
      '250 2.1.5 Accepted',
      '250 2.1.5 Accepted',
      '550 5.1.1 No such user here', // other.example is not a local domain: no lookup by local part
      '354 End data with <CR><LF>.<CR><LF>',
      '250 2.1.5 Delivered to 1 mailbox(es)',
      '250 2.1.5 Delivered to 1 mailbox(es)',
      '250 2.1.5 Delivered to 1 mailbox(es)',
    ].map((l) => l.replace('Delivered to 1 mailbox(es)', 'Ok SESSIONID=<raw>')));
    expect(cy.connections[0]!.lines.filter((l) => /^(MAIL|RCPT)/.test(l))).toEqual([
      'MAIL FROM:<s@xn--bcher-kva.example>',
      'RCPT TO:<zed@xn--mnchen-3ya.example>',
      'RCPT TO:<Zed+x@XN--BCHER-KVA.example>', // smtp-server leaves upper-case ACE alone: passed as sent
      'RCPT TO:<anna@xn--mnchen-3ya.example>',
    ]);
    expect(cy.messages.map((m) => m.toString())).toEqual(['Subject: idn\r\n\r\nhello\r\n']);
  });
});
