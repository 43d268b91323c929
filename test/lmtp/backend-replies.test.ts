/** How backend replies are read: multi-line replies, Cyrus lmtpd's exact lines. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { addStoreAt, startFixture, type Fixture } from './fixture.js';
import { WireClient } from './wire-client.js';
import { CYRUS_MAILBOX_UNKNOWN, startRawBackend, type RawBackend } from './raw-backend.js';

let fx: Fixture;
let cy: RawBackend;
let c: WireClient;
beforeEach(async () => {
  fx = await startFixture({ lmtp: { rcptDeadlineMs: 2_000 } });
  cy = await startRawBackend({
    rcpt: (a) => a.startsWith('ghost') ? CYRUS_MAILBOX_UNKNOWN
      : a.startsWith('full') ? ['452-Over quota;', '452 4.2.2 Mailbox is full'] : ['250 2.1.5 ok'],
  });
  await addStoreAt(fx, cy.port, 'cy', ['ghost', 'full', 'zed']);
  c = (await WireClient.open(fx.port)).client;
  await c.cmd('LHLO postfix.test');
  expect(await c.cmd('MAIL FROM:<s@x.org>')).toBe('250 2.1.0 Accepted');
});
afterEach(async () => { c.close(); await cy.close(); await fx.close(); });

describe('backend replies', () => {
  it("Cyrus's three-line 550 … 5.1.1 for a user the directory knows is masked to 451 4.3.0", async () => {
    expect(await c.cmd('RCPT TO:<ghost@example.com>'))
      .toBe('451 4.3.0 Mailbox not found on its server, directory update pending; try again later');
    expect(await c.cmd('RCPT TO:<zed@example.com>')).toBe('250 2.1.5 Accepted');
  });

  it('a multi-line reply is relayed with the code, enhanced code and text of its last line', async () => {
    expect(await c.cmd('RCPT TO:<full@example.com>')).toBe('452 4.2.2 Mailbox is full');
  });
});
