/** What the LMTP listener logs: about its clients' connections, and one line per recipient delivered. */
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { startFixture, type Fixture } from './fixture.js';
import { WireClient } from './wire-client.js';
import { waitFor } from '../helpers/ports.js';

let fx: Fixture | null = null;
afterEach(async () => { await fx?.close(); fx = null; });

function capturingLogger() {
  const lines: Array<{ level: number; msg: string; err?: { code?: string }; [field: string]: unknown }> = [];
  const out = new Writable({ write(chunk: Buffer, _enc, cb) { lines.push(JSON.parse(chunk.toString())); cb(); } });
  return { logger: pino({ level: 'debug' }, out), lines };
}

describe('LMTP listener logs', () => {
  it('a client resetting its connection outside a transaction is a debug line, not a warning', async () => {
    const { logger, lines } = capturingLogger();
    fx = await startFixture({ logger });
    const { client } = await WireClient.open(fx.port);
    await client.cmd('LHLO postfix.test');
    client.socket.resetAndDestroy();
    await waitFor(() => lines.some((l) => l.err?.code === 'ECONNRESET'), 5_000, 'the reset to be logged');
    const reset = lines.filter((l) => l.err?.code === 'ECONNRESET');
    expect(reset.map((l) => [l.msg, l.level])).toEqual([['smtp_server', 20]]);
    expect(lines.filter((l) => l.level >= 40)).toEqual([]);
  });

  it('one lmtp_delivery line per recipient: queue id, recipient, store, slot, reply, ms; no content', async () => {
    const { logger, lines } = capturingLogger();
    fx = await startFixture({ logger });
    fx.be.b1.behaviour.final = () => ({ code: 452, text: '4.2.2 Over quota' });
    const { client } = await WireClient.open(fx.port);
    await client.cmd('LHLO postfix.test');
    await client.cmd('XFORWARD IDENT=4Xq1ABC');
    const body = Buffer.from('Subject: secret plans\r\n\r\nthe body text\r\n');
    const r = await client.send('sender@example.org', ['alice@example.com', 'bob@example.com', 'carol@example.com'], body);
    expect(r.finals.map((f) => f.slice(0, 3))).toEqual(['250', '452', '250']);
    await waitFor(() => lines.filter((l) => l.msg === 'lmtp_delivery').length === 3, 5_000, 'three delivery lines');
    const delivery = lines.filter((l) => l.msg === 'lmtp_delivery');
    expect(delivery.map(({ queueId, rcpt, store, slot, reply }) => ({ queueId, rcpt, store, slot, reply }))).toEqual([
      { queueId: '4Xq1ABC', rcpt: 'alice@example.com', store: 's1', slot: 'a1', reply: expect.stringMatching(/^250 2\.1\.5 /) },
      { queueId: '4Xq1ABC', rcpt: 'bob@example.com', store: 's2', slot: 'b1', reply: '452 4.2.2 Over quota' },
      { queueId: '4Xq1ABC', rcpt: 'carol@example.com', store: 's3', slot: 'c1', reply: expect.stringMatching(/^250 2\.1\.5 /) },
    ]);
    for (const l of delivery) {
      expect(l.level).toBe(30);
      expect(typeof l.ms).toBe('number');
    }
    const all = lines.map((l) => JSON.stringify(l)).join('\n');
    expect(all).not.toContain('secret plans');
    expect(all).not.toContain('the body text');
    client.close();
  });
});
