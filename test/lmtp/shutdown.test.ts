/** Graceful shutdown: stop accepting, let transactions finish within the grace period, tempfail the rest. */
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startFixture, type Fixture } from './fixture.js';
import { WireClient } from './wire-client.js';
import { waitFor } from '../helpers/ports.js';

let fx: Fixture | null = null;
let clients: WireClient[] = [];
afterEach(async () => { for (const c of clients) c.close(); clients = []; await fx?.close(); fx = null; });

async function open(f: Fixture): Promise<WireClient> {
  const { client } = await WireClient.open(f.port);
  clients.push(client);
  await client.cmd('LHLO postfix.test');
  return client;
}

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    let data = '';
    s.on('data', (d) => { data += d.toString(); });
    s.on('error', () => resolve(true));
    s.on('close', () => resolve(data === '' || data.startsWith('421')));
  });
}

describe('LMTP proxy: graceful shutdown', () => {
  it('lets a transaction in flight finish, closes idle sessions with 421, refuses new connections', async () => {
    fx = await startFixture();
    const busy = await open(fx);
    const idle = await open(fx);
    busy.write('MAIL FROM:<s@x.org>\r\nRCPT TO:<alice@example.com>\r\nDATA\r\n');
    expect(await busy.replies(3)).toEqual(['250 2.1.0 Accepted', '250 2.1.5 Accepted', '354 End data with <CR><LF>.<CR><LF>']);
    busy.write('Subject: in flight\r\n\r\nfirst half\r\n');
    const closing = fx.server.close(5_000);
    expect(await idle.reply()).toBe('421 4.3.2 Service shutting down, try again later');
    expect(await refused(fx.port)).toBe(true);
    busy.write('second half\r\n.\r\n');
    expect(await busy.reply()).toBe('250 2.1.5 Delivered to 1 mailbox(es)');
    expect(await busy.reply()).toBe('421 4.3.2 Service shutting down, try again later');
    await closing;
    expect(fx.be.a1.messages[0]!.body.toString()).toBe('Subject: in flight\r\n\r\nfirst half\r\nsecond half\r\n');
  });

  it('tempfails what is still running when the grace period ends, delivering nothing', async () => {
    fx = await startFixture();
    const c = await open(fx);
    c.write('MAIL FROM:<s@x.org>\r\nRCPT TO:<alice@example.com>\r\nDATA\r\n');
    expect(await c.replies(3)).toHaveLength(3);
    c.write('Subject: never finished\r\n\r\n');
    await waitFor(() => fx!.be.a1.open() > 0);
    const t0 = Date.now();
    await fx.server.close(300);
    expect(Date.now() - t0).toBeLessThan(3_000);
    expect(await c.reply()).toBe('421 4.3.2 Service shutting down, try again later');
    await waitFor(() => fx!.be.a1.open() === 0);
    expect(fx.be.a1.messages).toHaveLength(0);
  });
});
