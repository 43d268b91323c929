/**
 * The hand-written HTTP reader (src/auth/http.ts) on the wire: exact answer bytes, keep-alive
 * rules, pipelining, split writes, bare LF, the bytes it refuses, its size limit at the boundary,
 * the request timeout and half-closed clients.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { connect, createServer, type Socket } from 'node:net';
import { lookup } from 'node:dns/promises';
import { freePort, waitFor } from '../helpers/ports.js';
import { createListener } from '../../src/auth/link.js';
import { parseHead } from '../../src/auth/http.js';
import { startAuthRig, type AuthRig } from './setup.js';
import { exchange, nginxRequestBytes, type NginxRequest } from './wire.js';
import type { Registry } from 'prom-client';

const OK = 'HTTP/1.1 200 OK\r\nAuth-Status: OK\r\nAuth-Server: 127.0.0.11\r\nAuth-Port: 10143\r\n';
const CLOSE = 'Content-Length: 0\r\nConnection: close\r\n\r\n';
const KEEP = 'Content-Length: 0\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\n';
const BAD_400 = `HTTP/1.1 400 Bad Request\r\nAuth-Status: Invalid login or password\r\n${CLOSE}`;

let rig: AuthRig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

/** A raw client: collects everything the server writes and notes when it closes. */
class Raw {
  got = '';
  closed = false;
  readonly sock: Socket;
  constructor(port: number) {
    this.sock = connect(port, '127.0.0.1');
    this.sock.on('data', (c: Buffer) => { this.got += c.toString('latin1'); });
    this.sock.on('error', () => undefined);
    this.sock.on('close', () => { this.closed = true; });
  }
  send(bytes: Buffer | string): void { this.sock.write(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes); }
  answers(): number { return (this.got.match(/\r\n\r\n/g) ?? []).length; }
  async untilAnswers(n: number): Promise<string> {
    await waitFor(() => this.answers() >= n, 5_000, `${n} answer(s); got ${JSON.stringify(this.got)}`);
    return this.got;
  }
  async untilClosed(ms = 5_000): Promise<string> {
    await waitFor(() => this.closed, ms, `the server to close; got ${JSON.stringify(this.got)}`);
    return this.got;
  }
  destroy(): void { this.sock.destroy(); }
}

/** Requests the server has answered so far, from its own metrics. */
async function answered(metrics: Registry): Promise<number> {
  const m = await metrics.getSingleMetric('storeroute_auth_requests_total')?.get();
  return (m?.values ?? []).reduce((sum, v) => sum + v.value, 0);
}

/** Waits until the answered count is above 0 and unchanged over five polls 20 ms apart. */
async function untilAnswerCountSettles(metrics: Registry): Promise<void> {
  let last = -1;
  let still = 0;
  await waitFor(async () => {
    const now = await answered(metrics);
    still = now === last && now > 0 ? still + 1 : 0;
    last = now;
    if (still < 5) await new Promise((r) => setTimeout(r, 20));
    return still >= 5;
  }, 10_000, 'the server to stop answering a client that does not read');
}

const req = (r: NginxRequest = {}) => nginxRequestBytes({ user: 'alice', ...r }).toString('latin1');
const http11 = (r: NginxRequest = {}) => req(r).replace('HTTP/1.0', 'HTTP/1.1');

// Every wire test runs over both socket layers (src/auth/link.ts): they must be indistinguishable.
describe.each(['handle', 'net'] as const)('over the %s socket layer', (socketLayer) => {
  describe('answer bytes', () => {
    it('writes exactly these bytes for OK, a renamed user, a refusal, a bad request, 403, 404, 405 and 431', async () => {
      rig = await startAuthRig({ sharedSecret: { header: 'X-Storeroute-Secret', value: 's' } }, { socketLayer });
      const S = { 'X-Storeroute-Secret': 's' };
      const raw = async (r: NginxRequest | Buffer) => (await exchange(rig!.port, r)).raw;
      expect(await raw({ user: 'alice', extra: S })).toBe(OK + CLOSE);
      expect(await raw({ user: 'Alice', extra: S })).toBe(`${OK}Auth-User: alice\r\n${CLOSE}`);
      expect(await raw({ user: 'nobody', extra: S })).toBe(`HTTP/1.1 200 OK\r\nAuth-Status: Invalid login or password\r\nAuth-Wait: 3\r\n${CLOSE}`);
      expect(await raw({ user: 'a\r\nb', extra: S })).toBe(`HTTP/1.1 200 OK\r\nAuth-Status: Invalid login or password\r\n${CLOSE}`);
      expect(await raw({ user: 'alice' })).toBe(`HTTP/1.1 403 Forbidden\r\n${CLOSE}`);
      expect(await raw({ user: 'alice', path: '/elsewhere', extra: S })).toBe(`HTTP/1.1 404 Not Found\r\n${CLOSE}`);
      expect(await raw(Buffer.from('POST /auth HTTP/1.0\r\nHost: x\r\n\r\n'))).toBe(`HTTP/1.1 405 Method Not Allowed\r\n${CLOSE}`);
      expect(await raw({ user: 'alice', pass: 'x'.repeat(9000), extra: S }))
        .toBe(`HTTP/1.1 431 Request Header Fields Too Large\r\nAuth-Status: Invalid login or password\r\n${CLOSE}`);
      expect(await raw(Buffer.from('HELLO\r\n\r\n'))).toBe(BAD_400);
    });
  });

  describe('connections', () => {
    it('closes after an HTTP/1.0 answer, and keeps HTTP/1.0 + Connection: keep-alive open', async () => {
      rig = await startAuthRig({}, { socketLayer });
      const once = new Raw(rig.port);
      once.send(req());
      expect(await once.untilClosed()).toBe(OK + CLOSE);

      const kept = new Raw(rig.port);
      kept.send(req({ extra: { Connection: 'keep-alive' } }));
      expect(await kept.untilAnswers(1)).toBe(OK + KEEP);
      kept.send(req({ user: 'nobody', extra: { Connection: 'Keep-Alive' } }));
      await kept.untilAnswers(2);
      expect(kept.got).toBe(`${OK}${KEEP}HTTP/1.1 200 OK\r\nAuth-Status: Invalid login or password\r\nAuth-Wait: 3\r\n${KEEP}`);
      expect(kept.closed).toBe(false);
      kept.destroy();
    });

    it('keeps HTTP/1.1 open by default and closes on Connection: close', async () => {
      rig = await startAuthRig({}, { socketLayer });
      const c = new Raw(rig.port);
      c.send(http11());
      expect(await c.untilAnswers(1)).toBe(OK + KEEP);
      c.send(http11({ extra: { Connection: 'close' } }));
      expect(await c.untilClosed()).toBe(OK + KEEP + OK + CLOSE);
    });

    it('answers pipelined requests in order, one write for several', async () => {
      rig = await startAuthRig({}, { socketLayer });
      const c = new Raw(rig.port);
      const ka = { Connection: 'keep-alive' };
      c.send(req({ user: 'nobody', extra: ka }) + req({ user: 'Alice', extra: ka }) + req({ user: 'alice' }));
      const got = await c.untilClosed();
      expect(got).toBe(`HTTP/1.1 200 OK\r\nAuth-Status: Invalid login or password\r\nAuth-Wait: 3\r\n${KEEP}`
        + `${OK}Auth-User: alice\r\n${KEEP}${OK}${CLOSE}`);
    });

    it('reads a request written one byte at a time', async () => {
      rig = await startAuthRig({}, { socketLayer });
      const c = new Raw(rig.port);
      for (const ch of req()) c.send(ch);
      expect(await c.untilClosed()).toBe(OK + CLOSE);
    });

    it('answers a client that shuts down its sending side after the request', async () => {
      rig = await startAuthRig({}, { socketLayer });
      const c = new Raw(rig.port);
      c.sock.end(Buffer.from(req({ extra: { Connection: 'keep-alive' } }), 'latin1'));
      // Kept alive was asked for, but the peer can send nothing more: answer, then close. (Whether
      // the answer says keep-alive depends on whether the FIN was read before the answer was written.)
      expect([OK + CLOSE, OK + KEEP]).toContain(await c.untilClosed());
    });

    it('drops a request whose head does not complete within requestTimeoutMs, and an idle connection', async () => {
      rig = await startAuthRig({ requestTimeoutMs: 200 }, { socketLayer });
      const started = Date.now();
      const partial = new Raw(rig.port);
      const silent = new Raw(rig.port);
      partial.send(req().slice(0, 40));
      expect(await partial.untilClosed(3_000)).toBe('');
      expect(await silent.untilClosed(3_000)).toBe('');
      expect(Date.now() - started).toBeGreaterThanOrEqual(200);
      expect(rig.logs.filter((l) => l.msg === 'auth_request_timeout')).toHaveLength(1);
    });

    it('closes idle kept-alive connections when the server closes', async () => {
      rig = await startAuthRig({}, { socketLayer });
      const c = new Raw(rig.port);
      c.send(http11());
      expect(await c.untilAnswers(1)).toBe(OK + KEEP);
      expect(c.closed).toBe(false);
      await rig.close();
      rig = undefined;
      // Closed by the server (not by a timeout on our side), and nothing more was written.
      expect(await c.untilClosed()).toBe(OK + KEEP);
    });

    it('answers thousands of pipelined requests from a client that stops reading, once it reads again', async () => {
      rig = await startAuthRig({}, { socketLayer });
      const c = new Raw(rig.port);
      c.sock.pause(); // our answers pile up in the kernel until writes no longer complete at once
      const n = 20_000;
      const one = req({ extra: { Connection: 'keep-alive' } });
      c.send(one.repeat(n - 1) + req());
      // Resume only once the server has stopped making progress (its answered count stays still
      // across several polls): what it answered meanwhile sits in the kernel's buffers and its
      // own write queue, which is the state this test is about. Here it answers all of them.
      await untilAnswerCountSettles(rig.metrics);
      c.sock.resume();
      const got = await c.untilClosed(20_000);
      expect(got.length).toBe((OK + KEEP).length * (n - 1) + (OK + CLOSE).length);
      expect(got.endsWith(OK + KEEP + OK + CLOSE)).toBe(true);
    });

    it('uses the socket layer asked for, and reports a port in use like node:net', async () => {
      rig = await startAuthRig({}, { socketLayer });
      expect(rig.logs.filter((l) => l.msg === 'auth_socket_layer_fallback')).toEqual([]);
      await expect(startAuthRig({ listen: { port: rig.port } }, { socketLayer })).rejects.toMatchObject({ code: 'EADDRINUSE' });
    });

    it('listens on a host name', async () => {
      rig = await startAuthRig({ listen: { host: 'localhost', port: 0 } }, { socketLayer });
      const { address } = await lookup('localhost');
      const got = await new Promise<string>((resolve, reject) => {
        let text = '';
        const s = connect(rig!.port, address, () => s.write(Buffer.from(req(), 'latin1')));
        s.on('data', (b: Buffer) => { text += b.toString('latin1'); });
        s.on('error', reject);
        s.on('close', () => resolve(text));
      });
      expect(got).toBe(OK + CLOSE);
    });
  });

  describe('what the reader accepts and refuses', () => {
    it('tolerates bare LF line ends and leading empty lines', async () => {
      rig = await startAuthRig({}, { socketLayer });
      expect((await exchange(rig.port, Buffer.from(req().replace(/\r\n/g, '\n'), 'latin1'))).raw).toBe(OK + CLOSE);
      expect((await exchange(rig.port, Buffer.from(`\r\n\n${req()}`, 'latin1'))).raw).toBe(OK + CLOSE);
    });

    it('refuses NUL, a bare CR, control bytes, folded or malformed headers, other versions and bodies with 400, and keeps serving', async () => {
      rig = await startAuthRig({}, { socketLayer });
      const head = req().slice(0, -2); // without the final empty line
      const bad: [string, string][] = [
        ['bad-byte', head.replace('Auth-Method: plain', 'Auth-Method: pl\u0000ain') + '\r\n'],
        ['bad-byte', head.replace('Auth-Method: plain', 'Auth-Method: pl\rain') + '\r\n'],
        ['bad-byte', head.replace('Auth-Method: plain', 'Auth-Method: pl\u0001ain') + '\r\n'],
        ['bad-header', `${head} folded\r\n\r\n`],
        ['bad-header', `${head}Auth-Extra : x\r\n\r\n`],
        ['bad-header', `${head}Auth-Extra x\r\n\r\n`],
        ['bad-header', `${head}Aüth: x\r\n\r\n`],
        ['bad-request-line', req().replace('HTTP/1.0', 'HTTP/2.0')],
        ['bad-request-line', req().replace(' HTTP/1.0', '')],
        ['bad-request-line', req().replace('GET /auth', 'GET  /auth')],
        ['body-not-expected', `${head}Content-Length: 3\r\n\r\nabc`],
        ['body-not-expected', `${head}Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n`],
      ];
      for (const [, bytes] of bad) expect((await exchange(rig.port, Buffer.from(bytes, 'latin1'))).raw).toBe(BAD_400);
      expect(rig.logs.filter((l) => l.msg === 'auth_bad_http').map((l) => l.code)).toEqual(bad.map(([code]) => code));
      expect((await exchange(rig.port, Buffer.from(`${head}Content-Length: 0\r\n\r\n`, 'latin1'))).raw).toBe(OK + CLOSE);
    });

    it('joins a repeated header like node:http did, so two Auth-User lines are a bad name, not the first one', async () => {
      rig = await startAuthRig({}, { socketLayer });
      const twice = req().replace('\r\n\r\n', '\r\nAuth-User: bob@example.com\r\n\r\n');
      expect((await exchange(rig.port, Buffer.from(twice, 'latin1'))).auth).toEqual(['Auth-Status: Invalid login or password']);
      expect(rig.logs.find((l) => l.msg === 'auth_bad_request')).toMatchObject({ problem: 'bad-user' });
    });

    it('takes a head of exactly maxHeaderBytes and answers 431 to one byte more', async () => {
      rig = await startAuthRig({ maxHeaderBytes: 1024 }, { socketLayer });
      const sized = (n: number) => {
        const base = req().slice(0, -2);
        const pad = n - base.length - 'X-Pad: \r\n\r\n'.length;
        return Buffer.from(`${base}X-Pad: ${'p'.repeat(pad)}\r\n\r\n`, 'latin1');
      };
      expect(sized(1024).length).toBe(1024);
      expect((await exchange(rig.port, sized(1024))).raw).toBe(OK + CLOSE);
      expect((await exchange(rig.port, sized(1025))).status).toBe(431);
      expect(rig.logs.filter((l) => l.msg === 'auth_request_too_large')).toHaveLength(1);
    });

    it('reads names case-insensitively, trims only SP/HTAB around values, keeps DEL and 0xA0, and refuses an empty name', () => {
      const parsed = parseHead('GET /auth?x=1 HTTP/1.0\r\nAUTH-USER:\t alice \t\r\nauth-pass: \u00a0pw\u007f\u00a0\r\nX-Empty:\r\nHost: h\n\r\n');
      expect(parsed).toEqual({
        method: 'GET', target: '/auth?x=1', keepAlive: false,
        headers: { 'auth-user': 'alice', 'auth-pass': '\u00a0pw\u007f\u00a0', 'x-empty': '', host: 'h' },
      });
      expect(parseHead('GET /auth HTTP/1.1\r\n: x\r\n\r\n')).toBe('bad-header');
      expect(parseHead('GET /auth HTTP/1.1\r\nConnection: x, Close\r\n\r\n')).toMatchObject({ keepAlive: false });
      expect(parseHead('GET /auth HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n')).toMatchObject({ keepAlive: true });
    });

    it('treats headers named __proto__ or constructor as plain headers, and absent names read undefined', () => {
      const parsed = parseHead('GET /auth HTTP/1.0\r\n__proto__: x\r\nConstructor: y\r\n\r\n');
      if (typeof parsed === 'string') throw new Error(parsed);
      expect(Object.entries(parsed.headers)).toEqual([['__proto__', 'x'], ['constructor', 'y']]);
      const plain = parseHead('GET /auth HTTP/1.0\r\nHost: h\r\n\r\n');
      if (typeof plain === 'string') throw new Error(plain);
      expect([plain.headers.constructor, plain.headers.toString, plain.headers['__proto__'], plain.headers.hasOwnProperty]).toEqual([undefined, undefined, undefined, undefined]);
    });
  });
});

describe('the handle listener', () => {
  it('does not start listening when it is closed during its host-name lookup', async () => {
    const port = await freePort();
    const listener = createListener('handle', () => { throw new Error('no connection expected'); });
    const listening = listener.listen(port, 'localhost');
    await listener.close();
    await expect(listening).rejects.toThrow(/closed while starting/);
    // Nothing holds the port: we can listen on it ourselves.
    const { address } = await lookup('localhost');
    const probe = createServer();
    await new Promise<void>((resolve, reject) => { probe.once('error', reject); probe.listen(port, address, resolve); });
    await new Promise<void>((resolve) => probe.close(() => resolve()));
  });
});
