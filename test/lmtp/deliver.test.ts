import { afterEach, describe, expect, it } from 'vitest';
import { deliverMessage, lmtpReplyFor } from '../../src/lmtp/index.js';
import { BackendError } from '../../src/core/errors.js';
import { formatReply } from '../../src/core/replies.js';
import { startLmtpBackend, type LmtpBackend } from '../helpers/lmtp-backend.js';
import { createServer, type Server } from 'node:net';
import { Readable } from 'node:stream';

const closers: Array<() => Promise<void>> = [];
afterEach(async () => { for (const c of closers.splice(0)) await c(); });

async function backend(b: Parameters<typeof startLmtpBackend>[0] = {}): Promise<LmtpBackend> {
  const be = await startLmtpBackend(b);
  closers.push(() => be.close());
  return be;
}
const target = (be: LmtpBackend) => ({ host: be.host, port: be.port, slot: 'slot1' });
const fast = { connect: 500, greeting: 500, command: 500, data: 500, finalReply: 500 };

describe('deliverMessage (one-shot backend delivery)', () => {
  it('delivers to every recipient and returns RCPT and final verdicts in order', async () => {
    const be = await backend({ rcpt: (a) => a.startsWith('nobody') ? { code: 550, text: '5.1.1 User unknown' } : 'accept' });
    const body = Buffer.from('Subject: hi\r\n\r\n.dot line\r\n..two\r\nend\r\n');
    const res = await deliverMessage(target(be), { mailFrom: 'a@x', recipients: ['u1@x', 'nobody@x', 'u2@x'] }, body);
    expect(res.rcpt.map(formatReply)).toEqual(['250 2.1.5 Accepted', '550 5.1.1 User unknown', '250 2.1.5 Accepted']);
    expect(res.data.map((r) => r && formatReply(r))).toEqual(['250 2.1.5 Delivered to 2 mailbox(es)', null,
      '250 2.1.5 Delivered to 2 mailbox(es)']);
    expect(be.messages).toHaveLength(1);
    expect(be.messages[0]?.body.equals(body)).toBe(true);
    expect(be.messages[0]?.recipients).toEqual(['u1@x', 'u2@x']);
  });

  it('passes bare LF, bare CR and 8-bit bytes through unchanged, from a stream', async () => {
    const be = await backend();
    const body = Buffer.concat([Buffer.from('X: \xe9\xff\r\n\r\nbare\nlf\rcr\n.dot after bare lf\r\n', 'latin1')]);
    const res = await deliverMessage(target(be), { mailFrom: '', recipients: ['u@x'] },
      Readable.from([body.subarray(0, 7), body.subarray(7)]));
    expect(res.data[0]?.code).toBe(250);
    expect(be.messages[0]?.body.equals(body)).toBe(true);
    expect(be.messages[0]?.mailFrom).toBe('');
  });

  it('rejects with BACKEND_UNREACHABLE (451 4.4.1) when nothing listens', async () => {
    const srv: Server = createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as { port: number }).port;
    await new Promise<void>((r) => srv.close(() => r()));
    const err = await deliverMessage({ host: '127.0.0.1', port, slot: 's9' }, { mailFrom: '', recipients: ['u@x'] },
      Buffer.from('x\r\n')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackendError);
    expect((err as BackendError).code).toBe('BACKEND_UNREACHABLE');
    expect(formatReply(lmtpReplyFor(err))).toMatch(/^451 4\.4\.1 /);
  });

  it('rejects with BACKEND_TIMEOUT (451 4.4.2) when the greeting never comes', async () => {
    const be = await backend({ greeting: 'stall' });
    const err = await deliverMessage(target(be), { mailFrom: '', recipients: ['u@x'] }, Buffer.from('x\r\n'),
      { timeouts: fast }).catch((e: unknown) => e);
    expect((err as BackendError).code).toBe('BACKEND_TIMEOUT');
    expect(formatReply(lmtpReplyFor(err))).toBe('451 4.4.2 Mailbox server timed out, try again later');
  });

  it('gives 451 4.4.2 for the final reply when the backend drops after the dot', async () => {
    const be = await backend({ final: () => 'drop' });
    const res = await deliverMessage(target(be), { mailFrom: '', recipients: ['u@x'] }, Buffer.from('x\r\n'), { timeouts: fast });
    expect(res.data[0] && formatReply(res.data[0])).toBe('451 4.4.2 Connection to mailbox server lost, try again later');
  });
});
