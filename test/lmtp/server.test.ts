import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startFixture, type Fixture } from './fixture.js';
import { WireClient } from './wire-client.js';
import { waitFor } from '../helpers/ports.js';

let fx: Fixture;
let clients: WireClient[] = [];
beforeEach(async () => { fx = await startFixture(); });
afterEach(async () => { for (const c of clients) c.close(); clients = []; await fx.close(); });

async function client(): Promise<WireClient> {
  const { client: c, greeting } = await WireClient.open(fx.port);
  expect(greeting).toBe('220 proxy.test LMTP storeroute');
  clients.push(c);
  await c.cmd('LHLO postfix.test');
  return c;
}
const msg = (s = 'hello') => Buffer.from(`Subject: ${s}\r\nMessage-ID: <${s}@t>\r\n\r\nbody ${s}\r\n`);

describe('LMTP proxy: session', () => {
  it('advertises PIPELINING, ENHANCEDSTATUSCODES, 8BITMIME and SIZE in its LHLO reply', async () => {
    const { client: c } = await WireClient.open(fx.port);
    clients.push(c);
    const lhlo = await c.cmd('LHLO postfix.test');
    const caps = lhlo.split('\n').map((l) => l.slice(4));
    expect(caps).toEqual(expect.arrayContaining(['PIPELINING', 'ENHANCEDSTATUSCODES', '8BITMIME', `SIZE ${50 * 1024 * 1024}`]));
    expect(caps).not.toContain('STARTTLS');
    expect(caps.some((c2) => c2.startsWith('AUTH'))).toBe(false);
  });

  it('delivers one message to recipients on three stores, each copy byte-identical', async () => {
    const c = await client();
    const body = msg('three');
    const r = await c.send('sender@example.org', ['alice@example.com', 'bob@example.com', 'carol@example.com'], body);
    expect(r.mail).toBe('250 2.1.0 Accepted');
    expect(r.rcpt).toEqual(['250 2.1.5 Accepted', '250 2.1.5 Accepted', '250 2.1.5 Accepted']);
    expect(r.finals).toEqual(Array(3).fill('250 2.1.5 Delivered to 1 mailbox(es)'));
    for (const [be, who] of [[fx.be.a1, 'alice'], [fx.be.b1, 'bob'], [fx.be.c1, 'carol']] as const) {
      expect(be.messages).toHaveLength(1);
      expect(be.messages[0]!.recipients).toEqual([`${who}@example.com`]);
      expect(be.messages[0]!.mailFrom).toBe('sender@example.org');
      expect(be.messages[0]!.body.equals(body)).toBe(true);
    }
  });

  it('reuses one backend session for consecutive transactions to the same slot', async () => {
    const c = await client();
    for (let i = 0; i < 3; i++) {
      const r = await c.send('s@x.org', ['alice@example.com'], msg(`m${i}`));
      expect(r.finals).toEqual(['250 2.1.5 Delivered to 1 mailbox(es)']);
    }
    expect(fx.be.a1.messages.map((m) => m.connection)).toEqual([1, 1, 1]);
    expect(fx.be.a1.connections()).toBe(1);
  });

  it('sends the second transaction of one client session to the new master after a failover', async () => {
    const c = await client();
    expect((await c.send('s@x.org', ['alice@example.com'], msg('before'))).finals[0]).toMatch(/^250 /);
    await fx.directory.failover('s1', { to: 'a2' }, 'test');
    expect((await c.send('s@x.org', ['alice@example.com'], msg('after'))).finals[0]).toMatch(/^250 /);
    expect(fx.be.a1.messages.map((m) => m.body.toString())).toEqual([msg('before').toString()]);
    expect(fx.be.a2.messages.map((m) => m.body.toString())).toEqual([msg('after').toString()]);
  });

  it('answers 100 pipelined transactions in lock-step, one reply per command', async () => {
    const c = await client();
    let wire = '';
    for (let i = 0; i < 100; i++) {
      const rcpt = ['alice', 'bob', 'carol'][i % 3];
      wire += `MAIL FROM:<s@x.org>\r\nRCPT TO:<${rcpt}@example.com>\r\nRCPT TO:<nobody${i}@example.com>\r\nDATA\r\n`;
      wire += `Subject: ${i}\r\n\r\n.line ${i}\r\n.\r\n`;
    }
    c.write(wire.replace(/\r\n\.line/g, '\r\n..line'));
    const got = await c.replies(500, 20_000);
    for (let i = 0; i < 100; i++) {
      expect(got.slice(i * 5, i * 5 + 5)).toEqual(['250 2.1.0 Accepted', '250 2.1.5 Accepted',
        '550 5.1.1 No such user here', '354 End data with <CR><LF>.<CR><LF>', '250 2.1.5 Delivered to 1 mailbox(es)']);
    }
    const all = [...fx.be.a1.messages, ...fx.be.b1.messages, ...fx.be.c1.messages];
    expect(all).toHaveLength(100);
    expect(all.map((m) => m.body.toString()).sort()).toEqual(
      Array.from({ length: 100 }, (_, i) => `Subject: ${i}\r\n\r\n.line ${i}\r\n`).sort());
  });

  it('answers a malformed address with a 5xx syntax reply for that command only', async () => {
    const c = await client();
    expect(await c.cmd('MAIL FROM:<not an address>')).toBe('501 5.1.7 Error: Bad sender address syntax');
    expect(await c.cmd('MAIL FROM:<s@x.org>')).toBe('250 2.1.0 Accepted');
    expect(await c.cmd('RCPT TO:<a..b@example.com>')).toBe('501 5.1.3 Error: Bad recipient address syntax');
    expect(await c.cmd('RCPT TO:alice@example.com')).toBe('501 5.1.3 Error: Bad recipient address syntax');
    expect(await c.cmd('RCPT TO:<alice@example.com>')).toBe('250 2.1.5 Accepted');
    expect(await c.cmd('DATA')).toMatch(/^354 /);
    c.write('Subject: x\r\n\r\nok\r\n.\r\n');
    expect(await c.reply()).toBe('250 2.1.5 Delivered to 1 mailbox(es)');
  });

  it('serves a unix socket listener too', async () => {
    await fx.close();
    const path = `/tmp/sr-lmtp-${process.pid}-${Date.now()}.sock`;
    fx = await startFixture({ lmtp: { listen: null, socket: path } });
    expect(fx.socket).toBe(path);
    const { client: c, greeting } = await WireClient.open(path);
    clients.push(c);
    expect(greeting).toBe('220 proxy.test LMTP storeroute');
    await c.cmd('LHLO postfix.test');
    expect((await c.send('s@x.org', ['bob@example.com'], msg('unix'))).finals).toEqual(['250 2.1.5 Delivered to 1 mailbox(es)']);
  });

  it('counts deliveries and backend connects in its metrics', async () => {
    const c = await client();
    await c.send('s@x.org', ['alice@example.com', 'bob@example.com'], msg('m'));
    const text = await fx.registry.metrics();
    expect(text).toMatch(/storeroute_lmtp_deliveries_total\{result="delivered",class="2xx"\} 2/);
    expect(text).toMatch(/storeroute_lmtp_backend_connects_total\{slot="a1"\} 1/);
    await waitFor(async () => /storeroute_lmtp_backend_pool_sessions\{slot="a1",state="idle"\} 1/.test(await fx.registry.metrics()));
  });
});
