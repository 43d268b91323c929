/** What the LMTP listener logs about its clients' connections (not the per-delivery lines). */
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { startFixture, type Fixture } from './fixture.js';
import { WireClient } from './wire-client.js';
import { waitFor } from '../helpers/ports.js';

let fx: Fixture | null = null;
afterEach(async () => { await fx?.close(); fx = null; });

function capturingLogger() {
  const lines: Array<{ level: number; msg: string; err?: { code?: string } }> = [];
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
});
