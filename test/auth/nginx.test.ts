/**
 * The real nginx mail module in front of two IMAP backends, asking our auth_http server where
 * each login goes. Needs Debian's nginx + libnginx-mod-mail (fails with a clear message if absent).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type Socket } from 'node:net';
import type { Registry } from 'prom-client';
import { freePort, waitFor } from '../helpers/ports.js';
import { startNginx, type NginxServer } from '../helpers/nginx.js';
import { startImapBackend, type ImapBackend } from '../helpers/imap-backend.js';
import { openDirectory } from './setup.js';
import { createAuthServer, createMemoryThrottleStore, type ThrottleStore } from '../../src/auth/index.js';
import { parseConfig } from '../../src/config/index.js';
import type { Directory } from '../../src/directory/types.js';
import { testLogger, testRegistry } from '../helpers/logger.js';

/** A minimal IMAP client: send a tagged command, collect lines until its tagged answer. */
class ImapClient {
  #lines: string[] = [];
  #buf = '';
  #waiters: (() => void)[] = [];
  constructor(readonly sock: Socket) {
    sock.setEncoding('utf8');
    sock.on('data', (c: string) => {
      this.#buf += c;
      let i;
      while ((i = this.#buf.indexOf('\r\n')) !== -1) {
        this.#lines.push(this.#buf.slice(0, i));
        this.#buf = this.#buf.slice(i + 2);
      }
      for (const w of this.#waiters.splice(0)) w();
    });
    sock.on('close', () => { for (const w of this.#waiters.splice(0)) w(); });
    sock.on('error', () => undefined);
  }
  static async open(port: number): Promise<ImapClient> {
    const sock = connect(port, '127.0.0.1');
    await new Promise((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject); });
    const c = new ImapClient(sock);
    await c.until((l) => l.startsWith('* OK'), 5_000);
    return c;
  }
  async until(match: (line: string) => boolean, ms: number): Promise<string> {
    const deadline = Date.now() + ms;
    for (;;) {
      const idx = this.#lines.findIndex(match);
      if (idx !== -1) return this.#lines.splice(0, idx + 1).at(-1)!;
      if (this.sock.destroyed) throw new Error(`connection closed; lines: ${JSON.stringify(this.#lines)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no matching line within ${ms} ms; lines: ${JSON.stringify(this.#lines)}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.#waiters.push(() => { clearTimeout(t); resolve(); });
      });
    }
  }
  async command(tag: string, text: string, ms = 10_000): Promise<string> {
    this.sock.write(`${tag} ${text}\r\n`);
    return this.until((l) => l.startsWith(`${tag} `), ms);
  }
  close(): void { this.sock.destroy(); }
}

async function loginThroughNginx(port: number, user: string, pass: string): Promise<string> {
  const c = await ImapClient.open(port);
  try {
    return await c.command('a1', `LOGIN "${user}" "${pass}"`);
  } finally {
    c.close();
  }
}

describe('nginx mail proxy asking storeroute', () => {
  let nginx: NginxServer;
  let backendA: ImapBackend;
  let backendB: ImapBackend;
  let directory: Directory;
  let cleanupDirectory: () => Promise<void>;
  let auth: { close(): Promise<void> };
  let throttle: ThrottleStore;
  let imapPort: number;
  let metrics: Registry;
  const answered = async (result: string) => {
    const m = await metrics.getSingleMetric('storeroute_auth_requests_total')!.get();
    return m.values.filter((v) => v.labels.result === result).reduce((n, v) => n + v.value, 0);
  };

  beforeAll(async () => {
    backendA = await startImapBackend('A', '127.0.0.1');
    backendB = await startImapBackend('B', '127.0.0.2');
    ({ directory, cleanup: cleanupDirectory } = await openDirectory());
    await directory.createSlot({ name: 'slot-a', machine: 'm1', ip: backendA.host, imap: backendA.port, pop3: 1110 }, 'test');
    await directory.createSlot({ name: 'slot-b', machine: 'm2', ip: backendB.host, imap: backendB.port, pop3: 2110 }, 'test');
    await directory.createStore({ name: 'store1', slots: ['slot-a', 'slot-b'], preferredMaster: 'slot-a' }, 'test');
    await directory.createUser({ name: 'alice', store: 'store1' }, 'test');
    const config = parseConfig({ auth: {
      listen: { port: 0 }, failWaitSeconds: 1, holdMaxMs: 20_000,
      sharedSecret: { header: 'X-Storeroute-Secret', value: 'nginx-test-secret' },
    } }).auth;
    throttle = createMemoryThrottleStore();
    metrics = testRegistry();
    const server = createAuthServer({ config, directory, throttle, obs: { logger: testLogger(), metrics } });
    const { port: authPort } = await server.listen();
    auth = server;
    imapPort = await freePort();
    nginx = await startNginx({
      mail: `
        auth_http 127.0.0.1:${authPort}/auth;
        auth_http_header X-Storeroute-Secret nginx-test-secret;
        auth_http_timeout 10s;
        proxy_pass_error_message on;
        server {
          listen 127.0.0.1:${imapPort};
          protocol imap;
          imap_auth plain login;
        }`,
      readyPorts: [{ host: '127.0.0.1', port: imapPort }],
    });
  });

  afterAll(async () => {
    await nginx?.stop();
    await auth?.close();
    await throttle?.close();
    await backendA?.close();
    await backendB?.close();
    await cleanupDirectory?.();
  });

  it('logs in to the current master, and after a failover a new login reaches the other backend', async () => {
    const first = await loginThroughNginx(imapPort, 'alice', 'pw one');
    expect(first).toBe('a1 OK [CAPABILITY IMAP4rev1] LOGIN completed on backend A as alice');
    expect(backendA.logins).toEqual([{ user: 'alice', pass: 'pw one' }]);

    await directory.failover('store1', { to: 'slot-b' }, 'test');
    const second = await loginThroughNginx(imapPort, 'Alice', 'pw two');
    // nginx logs in to the backend with the directory's name (Auth-User), not what was typed.
    expect(second).toBe('a1 OK [CAPABILITY IMAP4rev1] LOGIN completed on backend B as alice');
    expect(backendB.logins).toEqual([{ user: 'alice', pass: 'pw two' }]);
  });

  it('holds a login while the store fails over and completes it on the new master', async () => {
    await directory.setStoreState('store1', 'failing-over', 'test');
    const client = await ImapClient.open(imapPort);
    try {
      client.sock.write('a1 LOGIN alice "pw three"\r\n');
      // nginx is now re-asking every second (Auth-Status: WAIT); finish the failover meanwhile.
      await waitFor(async () => (await answered('wait')) >= 1, 5_000, 'nginx to be told WAIT');
      await directory.failover('store1', { to: 'slot-a' }, 'test');
      await directory.setStoreState('store1', 'active', 'test');
      const answer = await client.until((l) => l.startsWith('a1 '), 10_000);
      expect(answer).toBe('a1 OK [CAPABILITY IMAP4rev1] LOGIN completed on backend A as alice');
      expect(await client.command('a2', 'NOOP')).toBe('a2 OK NOOP completed on backend A');
    } finally {
      client.close();
    }
  });

  it('shows the client our failure text for an unknown user', async () => {
    const answer = await loginThroughNginx(imapPort, 'nobody', 'pw');
    expect(answer).toBe('a1 NO Invalid login or password');
    expect(nginx.errorLog()).toContain('client login failed: "Invalid login or password"');
  });
});
