/** The DATA path: byte-exactness, partial failures mid-DATA, over-size, and the journal hook. */
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { startFixture, type Fixture } from './fixture.js';
import { WireClient, stuff } from './wire-client.js';
import { waitFor } from '../helpers/ports.js';
import { RecordingJournal } from './recording-journal.js';

let fx: Fixture | null = null;
let clients: WireClient[] = [];
afterEach(async () => { for (const c of clients) c.close(); clients = []; await fx?.close(); fx = null; });

async function setup(opts: Parameters<typeof startFixture>[0] = {}): Promise<{ fx: Fixture; c: WireClient }> {
  fx = await startFixture(opts);
  const { client: c } = await WireClient.open(fx.port);
  clients.push(c);
  await c.cmd('LHLO postfix.test');
  return { fx, c };
}
const fixture = (name: string) => readFileSync(new URL(`../fixtures/${name}`, import.meta.url));
const big = (n: number) => Buffer.concat([Buffer.from('Subject: big\r\n\r\n'),
  Buffer.alloc(n, 'abcdefghijklmnopqrstuvwxyz0123456789 .\r\n'.repeat(10)), Buffer.from('\r\n')]);

describe('LMTP proxy: DATA', () => {
  it.each(['8bit-long-lines.eml', 'bare-cr-lf.eml'])('delivers %s byte-identical to two stores', async (name) => {
    const { fx: f, c } = await setup();
    const body = fixture(name);
    const r = await c.send('s@x.org', ['alice@example.com', 'bob@example.com'], body);
    expect(r.finals).toEqual(Array(2).fill('250 2.1.5 Delivered to 1 mailbox(es)'));
    expect(f.be.a1.messages[0]!.body.equals(body)).toBe(true);
    expect(f.be.b1.messages[0]!.body.equals(body)).toBe(true);
  });

  it('a backend dropping mid-DATA gives 451 4.4.2 for its recipients only', async () => {
    const { fx: f, c } = await setup();
    f.be.b1.behaviour = { data: 'drop', dropAfterBytes: 1000 };
    const body = big(300_000);
    const r = await c.send('s@x.org', ['alice@example.com', 'bob@example.com', 'dave@example.com'], body);
    expect(r.finals).toEqual(['250 2.1.5 Delivered to 2 mailbox(es)',
      '451 4.4.2 Connection to mailbox server lost, try again later', '250 2.1.5 Delivered to 2 mailbox(es)']);
    expect(f.be.a1.messages[0]!.body.equals(body)).toBe(true);
    expect(f.be.b1.messages).toHaveLength(0);
  });

  it('a backend that stops reading mid-DATA times out (451 4.4.2) without holding up the others', async () => {
    const { fx: f, c } = await setup({ lmtp: { backend: { dataTimeoutMs: 300 } } });
    f.be.c1.behaviour = { data: 'stall' };
    const body = big(30 * 1024 * 1024); // more than loopback socket buffers hold
    const r = await c.send('s@x.org', ['carol@example.com', 'alice@example.com'], body, 20_000);
    expect(r.finals).toEqual(['451 4.4.2 Mailbox server timed out, try again later', '250 2.1.5 Delivered to 1 mailbox(es)']);
    expect(f.be.a1.messages[0]!.body.equals(body)).toBe(true);
  }, 30_000);

  it('a backend that never answers after the dot times out: 451 4.4.2', async () => {
    const { fx: f, c } = await setup({ lmtp: { backend: { finalReplyTimeoutMs: 300 } } });
    f.be.a1.behaviour = { final: () => 'stall' };
    const r = await c.send('s@x.org', ['alice@example.com', 'bob@example.com'], Buffer.from('S: x\r\n\r\nx\r\n'));
    expect(r.finals).toEqual(['451 4.4.2 Mailbox server timed out, try again later', '250 2.1.5 Delivered to 1 mailbox(es)']);
  });

  it("relays each backend's per-recipient final verdict", async () => {
    const { fx: f, c } = await setup();
    f.be.a1.behaviour = { final: (a) => a.startsWith('dave') ? { code: 552, text: '5.2.2 Over quota' } : 'accept' };
    const r = await c.send('s@x.org', ['alice@example.com', 'dave@example.com'], Buffer.from('S: x\r\n\r\nx\r\n'));
    expect(r.finals).toEqual(['250 2.1.5 Delivered to 2 mailbox(es)', '552 5.2.2 Over quota']);
  });

  it('over-size: 552 5.3.4 for every recipient, nothing delivered, the session goes on', async () => {
    const { fx: f, c } = await setup({ lmtp: { maxMessageSize: 4096 } });
    const r = await c.send('s@x.org', ['alice@example.com', 'bob@example.com'], big(100_000));
    expect(r.finals).toEqual(Array(2).fill('552 5.3.4 Error: message exceeds fixed maximum message size 4096'));
    expect(f.be.a1.messages).toHaveLength(0);
    expect(f.be.b1.messages).toHaveLength(0);
    const ok = await c.send('s@x.org', ['alice@example.com'], Buffer.from('S: small\r\n\r\nx\r\n'));
    expect(ok.finals).toEqual(['250 2.1.5 Delivered to 1 mailbox(es)']);
  });

  it('a client that disconnects mid-DATA delivers nothing anywhere', async () => {
    const { fx: f, c } = await setup();
    c.write('MAIL FROM:<s@x.org>\r\nRCPT TO:<alice@example.com>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n');
    expect(await c.replies(4)).toHaveLength(4);
    c.write(stuff(big(200_000)).subarray(0, 150_000));
    await waitFor(() => f.be.a1.open() > 0 && f.be.b1.open() > 0);
    c.close();
    await waitFor(() => f.be.a1.open() === 0 && f.be.b1.open() === 0, 5_000, 'backend sessions closed');
    expect(f.be.a1.messages).toHaveLength(0);
    expect(f.be.b1.messages).toHaveLength(0);
  });
});

describe('LMTP proxy: journal hook', () => {
  it('journals exactly the bytes delivered, adding a Message-ID when missing, and commits the delivered recipients', async () => {
    const journal = new RecordingJournal();
    const { fx: f, c } = await setup({ journal, journalConfig: { addMessageId: true, messageIdDomain: 'mid.test' } });
    f.be.b1.behaviour = { rcpt: () => ({ code: 452, text: '4.2.2 Mailbox full' }) };
    const body = Buffer.from('Subject: no id\r\nX-A: 1\r\n\r\nbody\r\n');
    const r = await c.send('s@x.org', ['alice@example.com', 'bob@example.com'], body);
    expect(r.finals).toEqual(['250 2.1.5 Delivered to 1 mailbox(es)']);
    const delivered = f.be.a1.messages[0]!.body;
    expect(delivered.toString()).toMatch(/^Subject: no id\r\nX-A: 1\r\nMessage-ID: <[^@>]+@mid\.test>\r\n\r\nbody\r\n$/);
    const e = journal.entries[0]!;
    expect(Buffer.concat(e.bytes).equals(delivered)).toBe(true);
    expect(e.committed?.messageId).toBe(/Message-ID: (<[^>]+>)/.exec(delivered.toString())?.[1]);
    expect(e.committed?.size).toBe(delivered.length);
    expect(e.committed?.recipients.map((x) => [x.address, x.user, x.store, x.slot, x.epoch, x.reply.code]))
      .toEqual([['alice@example.com', 'alice', 's1', 'a1', 0, 250]]);
  });

  it('keeps an existing Message-ID and the bytes untouched', async () => {
    const journal = new RecordingJournal();
    const { fx: f, c } = await setup({ journal });
    const body = fixture('8bit-long-lines.eml');
    await c.send('s@x.org', ['alice@example.com'], body);
    expect(f.be.a1.messages[0]!.body.equals(body)).toBe(true);
    expect(journal.entries[0]!.committed?.messageId).toBe('<8bit-long-lines@fixture>');
  });

  it('a journal known to have failed delivers nothing: 451 4.3.0 for all, on every postfix retry', async () => {
    const journal = new RecordingJournal();
    journal.failing = true;
    const { fx: f, c } = await setup({ journal });
    for (let attempt = 0; attempt < 3; attempt++) {
      const r = await c.send('s@x.org', ['alice@example.com', 'bob@example.com'], Buffer.from('Message-ID: <m1@x>\r\n\r\nhello\r\n'));
      expect(r.finals).toEqual(Array(2).fill('451 4.3.0 Replay journal unavailable, try again later'));
    }
    expect(f.be.a1.messages.length + f.be.b1.messages.length).toBe(0);
    expect(journal.entries.map((e) => [e.aborted, e.committed])).toEqual(Array(3).fill([true, undefined]));
    // The backend sessions were only RSET: once the journal is back they carry the retry.
    journal.failing = false;
    const ok = await c.send('s@x.org', ['alice@example.com', 'bob@example.com'], Buffer.from('Message-ID: <m1@x>\r\n\r\nhello\r\n'));
    expect(ok.finals).toEqual(Array(2).fill('250 2.1.5 Delivered to 1 mailbox(es)'));
    expect([f.be.a1.connections(), f.be.b1.connections()]).toEqual([1, 1]);
  });

  it('a journal that fails while the message streams: the backends get no final dot, 451 4.3.0 for all', async () => {
    const journal = new RecordingJournal();
    const { fx: f, c } = await setup({ journal });
    c.write('MAIL FROM:<s@x.org>\r\nRCPT TO:<alice@example.com>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n');
    expect(await c.replies(4)).toEqual(['250 2.1.0 Accepted', '250 2.1.5 Accepted', '250 2.1.5 Accepted',
      '354 End data with <CR><LF>.<CR><LF>']);
    c.write('Subject: x\r\n\r\nfirst half\r\n');
    await waitFor(async () => /^storeroute_lmtp_received_bytes_total 26$/m.test(await f.registry.metrics()), 5_000, 'first half received');
    journal.failing = true; // e.g. the segment's write failed
    c.write('second half\r\n.\r\n');
    expect(await c.replies(2)).toEqual(Array(2).fill('451 4.3.0 Replay journal unavailable, try again later'));
    await waitFor(() => f.be.a1.open() === 0 && f.be.b1.open() === 0, 5_000, 'backend sessions closed');
    expect(f.be.a1.messages.length + f.be.b1.messages.length).toBe(0);
    expect(journal.entries[0]!.aborted).toBe(true);
  });

  it('a journal commit that hangs is answered 451 4.3.0 at the final-reply deadline', async () => {
    const journal = new RecordingJournal();
    journal.hangCommit = true;
    const { c } = await setup({ journal, lmtp: { backend: { finalReplyTimeoutMs: 300 } } });
    const r = await c.send('s@x.org', ['alice@example.com'], Buffer.from('S: x\r\n\r\nx\r\n'), 3_000);
    expect(r.finals).toEqual(['451 4.3.0 Replay journal unavailable, try again later']);
  });

  it('a journal commit that fails turns every final reply into 451 4.3.0', async () => {
    const journal = new RecordingJournal();
    journal.failCommit = true;
    const { c } = await setup({ journal });
    const r = await c.send('s@x.org', ['alice@example.com', 'bob@example.com'], Buffer.from('S: x\r\n\r\nx\r\n'));
    expect(r.finals).toEqual(Array(2).fill('451 4.3.0 Replay journal unavailable, try again later'));
  });
});
