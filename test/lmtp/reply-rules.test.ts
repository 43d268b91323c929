/** Issue #3's reply rules, pinned as exact lines on the wire. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startFixture, type Fixture } from './fixture.js';
import { WireClient } from './wire-client.js';

let fx: Fixture;
let c: WireClient;
beforeEach(async () => {
  fx = await startFixture({ lmtp: { rcptDeadlineMs: 2_000, backend: { connectTimeoutMs: 300, greetingTimeoutMs: 300, commandTimeoutMs: 300 } } });
  c = (await WireClient.open(fx.port)).client;
  await c.cmd('LHLO postfix.test');
  expect(await c.cmd('MAIL FROM:<s@x.org>')).toBe('250 2.1.0 Accepted');
});
afterEach(async () => { c.close(); await fx.close(); });

const rcpt = (a: string) => c.cmd(`RCPT TO:<${a}>`);

describe('RCPT reply rules', () => {
  it('unknown user: 550 5.1.1', async () => {
    expect(await rcpt('nobody@example.com')).toBe('550 5.1.1 No such user here');
  });

  it('strips +detail for the lookup but hands the backend the original address; local part for any domain', async () => {
    expect(await rcpt('Alice+Lists@Other.example')).toBe('250 2.1.5 Accepted');
    expect(await rcpt('dave+x@example.com')).toBe('250 2.1.5 Accepted');
    expect(await c.cmd('DATA')).toMatch(/^354/);
    c.write('Subject: d\r\n\r\nx\r\n.\r\n');
    expect(await c.replies(2)).toEqual(Array(2).fill('250 2.1.5 Delivered to 2 mailbox(es)'));
    expect(fx.be.a1.messages[0]!.recipients).toEqual(['Alice+Lists@Other.example', 'dave+x@example.com']);
  });

  it('store failing-over or down: 451 4.3.0', async () => {
    await fx.directory.setStoreState('s1', 'failing-over', 'test');
    expect(await rcpt('alice@example.com')).toBe('451 4.3.0 Mailbox store is failing over, try again later');
    await fx.directory.setStoreState('s1', 'down', 'test');
    expect(await rcpt('alice@example.com')).toBe('451 4.3.0 Mailbox store is down, try again later');
  });

  it('user moving: 451 4.2.1', async () => {
    await fx.directory.beginMove('alice', 's2', 'test');
    expect(await rcpt('alice@example.com')).toBe('451 4.2.1 Mailbox is being moved, try again later');
  });

  it('master slot not up: 451 4.3.0', async () => {
    await fx.directory.setSlotState('a1', 'maintenance', 'test');
    expect(await rcpt('alice@example.com')).toBe('451 4.3.0 Mailbox server is not available, try again later');
  });

  it('suspended user: 550 5.2.1 (an operator decision, see src/lmtp/route.ts)', async () => {
    await fx.directory.setUserState('bob', 'suspended', 'test');
    expect(await rcpt('bob@example.com')).toBe('550 5.2.1 Mailbox disabled, not accepting messages');
  });

  it('backend 550 5.1.1 for a user the directory knows is masked to 451 4.3.0', async () => {
    fx.be.a1.behaviour = { rcpt: () => ({ code: 550, text: '5.1.1 User unknown' }) };
    expect(await rcpt('alice@example.com')).toBe('451 4.3.0 Mailbox not found on its server, directory update pending; try again later');
  });

  it("relays any other backend verdict with the backend's exact enhanced code", async () => {
    fx.be.a1.behaviour = { rcpt: () => ({ code: 552, text: '5.2.2 Over quota' }) };
    expect(await rcpt('alice@example.com')).toBe('552 5.2.2 Over quota');
    fx.be.b1.behaviour = { rcpt: () => ({ code: 450, text: '4.2.0 Mailbox locked' }) };
    expect(await rcpt('bob@example.com')).toBe('450 4.2.0 Mailbox locked');
  });

  it('backend unreachable: 451 4.4.1', async () => {
    await fx.directory.failover('s2', { to: 'b2', force: true }, 'test'); // b2 points at a closed port
    expect(await rcpt('bob@example.com')).toBe('451 4.4.1 Mailbox server unreachable, try again later');
  });

  it('backend silent (no greeting): 451 4.4.2', async () => {
    fx.be.c1.behaviour = { greeting: 'stall' };
    expect(await rcpt('carol@example.com')).toBe('451 4.4.2 Mailbox server timed out, try again later');
  });

  it('backend drops the connection at RCPT: 451 4.4.2, and the next RCPT gets a fresh session', async () => {
    fx.be.a1.behaviour = { rcpt: () => 'drop' };
    expect(await rcpt('alice@example.com')).toBe('451 4.4.2 Connection to mailbox server lost, try again later');
    fx.be.a1.behaviour = {};
    expect(await rcpt('dave@example.com')).toBe('250 2.1.5 Accepted');
  });

  it('backend refuses MAIL FROM: its verdict is every such RCPT\'s reply', async () => {
    fx.be.a1.behaviour = { mail: { code: 451, text: '4.3.0 Try later' } };
    expect(await rcpt('alice@example.com')).toBe('451 4.3.0 Try later');
    expect(await rcpt('bob@example.com')).toBe('250 2.1.5 Accepted');
  });
});
