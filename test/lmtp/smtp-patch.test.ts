/** The runtime patches of smtp-server (src/lmtp/smtp-patch.ts), checked on the wire. */
import { afterEach, describe, expect, it } from 'vitest';
import { SMTPServer } from 'smtp-server';
import { applySmtpServerPatches, smtpServerVersion, PATCHED_SMTP_SERVER_VERSION } from '../../src/lmtp/smtp-patch.js';
import { connect } from 'node:net';
import { WireClient } from './wire-client.js';
import { waitFor } from '../helpers/ports.js';

let server: SMTPServer | null = null;
afterEach(async () => { await new Promise<void>((r) => (server ? server.close(() => r()) : r())); server = null; });

async function start(onRcptTo: (a: string) => Error | null): Promise<number> {
  applySmtpServerPatches();
  server = new SMTPServer({
    lmtp: true, name: 'p.test', logger: false, disabledCommands: ['AUTH', 'STARTTLS'], hideENHANCEDSTATUSCODES: false,
    disableReverseLookup: true, closeTimeout: 200,
    onRcptTo: (a, _s, cb) => cb(onRcptTo(a.address)),
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', () => r()));
  return (server.server.address() as { port: number }).port;
}
const err = (code: number, text: string) => Object.assign(new Error(text), { responseCode: code });

describe('smtp-server patches', () => {
  it('is the pinned version', () => {
    expect(smtpServerVersion()).toBe(PATCHED_SMTP_SERVER_VERSION);
  });

  it('relays an enhanced code given in the text instead of deriving one from the reply code', async () => {
    const port = await start((a) => a.startsWith('q') ? err(550, '5.7.1 Policy says no')
      : a.startsWith('m') ? err(451, '5.7.1 class mismatch is not an enhanced code') : err(550, 'plain text'));
    const { client: c } = await WireClient.open(port);
    await c.cmd('LHLO x');
    await c.cmd('MAIL FROM:<a@b.c>');
    expect(await c.cmd('RCPT TO:<q@b.c>')).toBe('550 5.7.1 Policy says no');
    expect(await c.cmd('RCPT TO:<p@b.c>')).toBe('550 5.1.1 plain text');
    expect(await c.cmd('RCPT TO:<m@b.c>')).toBe('451 4.3.0 5.7.1 class mismatch is not an enhanced code');
    c.close();
  });

  it('greets at once instead of after the 100 ms early-talker wait', async () => {
    const port = await start(() => null);
    const times: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      const { client: c, greeting } = await WireClient.open(port);
      times.push(performance.now() - t0);
      expect(greeting).toBe('220 p.test LMTP');
      c.close();
    }
    expect(Math.min(...times)).toBeLessThan(50);
  });
});

describe('smtp-server patches: QUIT', () => {
  it('closes the connection once the 221 is sent, without waiting for the client to close its side', async () => {
    applySmtpServerPatches();
    let closedAt = 0;
    server = new SMTPServer({
      lmtp: true, name: 'p.test', logger: false, disabledCommands: ['AUTH', 'STARTTLS'], hideENHANCEDSTATUSCODES: false,
      disableReverseLookup: true,
      socketTimeout: 10_000, closeTimeout: 200, onClose: () => { closedAt = performance.now(); },
    });
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', () => r()));
    const port = (server.server.address() as { port: number }).port;
    // A client that never closes its side: the server must not need its FIN (or its reset).
    const socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    let received = '';
    socket.on('data', (c: Buffer) => { received += c.toString('latin1'); });
    const ended = new Promise<void>((r) => socket.once('end', () => r()));
    await waitFor(() => received.startsWith('220 '), 2_000, 'the greeting');
    socket.write('LHLO x\r\nQUIT\r\n');
    await ended;
    const t0 = performance.now();
    expect(received.split('\r\n').slice(-2)).toEqual(['221 2.0.0 Bye', '']);
    await waitFor(() => closedAt > 0, 2_000, 'the server to close the connection');
    expect(closedAt - t0).toBeLessThan(1_000);
    socket.destroy();
  });
});
