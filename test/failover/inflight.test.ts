/**
 * The hold's question to the proxies, on real parts: a serving storeroute on a Redis directory
 * (LMTP proxy, admin API, the instance heartbeat) in front of a real LMTP backend that stalls in
 * DATA. A transaction routed to the old master counts as in flight until it ends; the probe is
 * quiet only once the proxy routes the store as failing-over and nothing is in flight; a proxy it
 * cannot ask ends the probe with a reason (the hold then waits its full bound).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type Socket } from 'node:net';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { loadConfig, type Config } from '../../src/config/index.js';
import { startStoreroute, type Running } from '../../src/main.js';
import { proxiesInflight } from '../../src/failover/index.js';
import { startLmtpBackend, type LmtpBackend } from '../helpers/lmtp-backend.js';
import { testLogger } from '../helpers/logger.js';
import { waitFor } from '../helpers/ports.js';
import { startRedis, uniquePrefix, type RedisServer } from '../helpers/redis.js';
import { instancesKey } from '../../src/core/redis-keys.js';

const TOKEN = 'inflight-test-token-0123456789abcdef';
let redis: RedisServer;
let client: Redis;
let backend: LmtpBackend;
let running: Running;
let config: Config;
let stopped = false;

beforeAll(async () => {
  redis = await startRedis();
  client = new Redis(redis.port);
  backend = await startLmtpBackend({ data: 'stall' });
  const dir = mkdtempSync(join(tmpdir(), 'sr-inflight-'));
  config = loadConfig(new URL('../../config/storeroute.example.yaml', import.meta.url).pathname);
  Object.assign(config.directory, { backend: 'redis' });
  Object.assign(config.directory.redis, { url: redis.url, keyPrefix: uniquePrefix('inflight') });
  config.journal.dir = join(dir, 'journal');
  config.lmtp.listen = { host: '127.0.0.1', port: 0 };
  config.auth.enabled = false;
  Object.assign(config.admin, { token: TOKEN, instanceName: 'proxy-1', heartbeatMs: 200 });
  config.admin.listen.port = 0;
  running = await startStoreroute(config, testLogger());
  const d = running.directory;
  await d.createSlot({ name: 's1', machine: 'm1', ip: '127.0.0.1', lmtp: backend.port }, 'test');
  await d.createSlot({ name: 's2', machine: 'm2', ip: '127.0.0.2' }, 'test');
  await d.createStore({ name: 'A', slots: ['s1', 's2'], preferredMaster: 's1' }, 'test');
  await d.createUser({ name: 'alice', store: 'A' }, 'test');
  await waitFor(async () => Object.keys(await client.hgetall(instancesKey(config.directory.redis.keyPrefix))).length > 0, 5_000, 'the heartbeat');
});

afterAll(async () => {
  if (!stopped) await running?.stop();
  await backend?.close();
  client?.disconnect();
  await redis?.close();
});

/** LHLO, MAIL, RCPT alice, DATA and a first line of the message, then nothing: a delivery in DATA. */
async function deliveryInData(): Promise<Socket> {
  const socket = connect(running.lmtp!.port!, '127.0.0.1');
  let seen = '';
  socket.on('data', (d: Buffer) => { seen += d.toString(); });
  const expectReply = (re: RegExp) => waitFor(() => re.test(seen), 5_000, `${re} in ${JSON.stringify(seen)}`);
  await expectReply(/^220 /m);
  socket.write('LHLO client\r\n');
  await expectReply(/^250 /m);
  socket.write('MAIL FROM:<s@example.com>\r\n');
  await expectReply(/^250 2\.1\.0/m);
  socket.write('RCPT TO:<alice@example.com>\r\n');
  await expectReply(/^250 2\.1\.5/m);
  socket.write('DATA\r\n');
  await expectReply(/^354 /m);
  socket.write('Subject: slow\r\n\r\n' + 'x'.repeat(1_000) + '\r\n');
  return socket;
}

const inflight = (query: string, token = TOKEN) =>
  fetch(`${running.admin!.url}/inflight?${query}`, { headers: { authorization: `Bearer ${token}` } });

describe('GET /inflight and the hold\'s probe', () => {
  it('counts a transaction in DATA to the slot until it ends; the probe is quiet only once the store is failing-over and nothing is in flight', async () => {
    const probe = proxiesInflight({ redis: client as never, keyPrefix: config.directory.redis.keyPrefix, adminToken: TOKEN, staleAfterMs: 5_000, pollMs: 20 });
    const q = { store: 'A', slot: 's1', user: 'alice' };
    const socket = await deliveryInData();
    expect(await (await inflight('slot=s1&user=alice')).json()).toEqual({
      slot: 's1', deliveries: 1, store: { name: 'A', state: 'active', epoch: 0, currentMaster: 's1' },
    });
    await running.directory.setStoreState('A', 'failing-over', 'test');
    const busy = await probe(q, Date.now() + 300);
    expect(busy).toEqual({ quiet: false, detail: 'proxy-1 has 1 transaction(s) in flight to s1' });

    // The client hangs up mid-DATA: the transaction ends, nothing more can land on s1.
    socket.destroy();
    await waitFor(async () => ((await (await inflight('slot=s1&user=alice')).json()) as { deliveries: number }).deliveries === 0, 5_000, 'the count to drop');
    const t0 = Date.now();
    expect(await probe(q, Date.now() + 5_000)).toEqual({ quiet: true, detail: '1 proxy instance(s): nothing in flight to s1' });
    expect(Date.now() - t0).toBeLessThan(1_000);

    await running.directory.setStoreState('A', 'active', 'test');
    await waitFor(async () => ((await (await inflight('slot=s1&user=alice')).json()) as { store: { state: string } }).store.state === 'active', 5_000, 'active again');
    expect(await probe(q, Date.now() + 200)).toEqual({ quiet: false, detail: 'proxy-1 still routes A as active' });
  });

  it('a client gone after the final dot, the backend not yet answered: still counted (the message may land)', async () => {
    backend.behaviour.data = 'accept';
    backend.behaviour.final = () => 'stall';
    try {
      const socket = await deliveryInData();
      const before = backend.messages.length;
      socket.write('.\r\n');
      await waitFor(() => backend.messages.length > before, 5_000, 'the backend to have the message');
      socket.destroy();
      await new Promise((r) => setTimeout(r, 500));
      expect(((await (await inflight('slot=s1&user=alice')).json()) as { deliveries: number }).deliveries).toBe(1);
    } finally {
      backend.behaviour.data = 'stall';
      delete backend.behaviour.final;
    }
  });

  it('refuses without the token or without slot and user, changing nothing', async () => {
    expect((await inflight('slot=s1&user=alice', 'wrong-token-wrong-token-wrong')).status).toBe(401);
    const bad = await inflight('slot=s1');
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ code: 'CONFIG_INVALID', error: expect.stringContaining('user') });
  });

  it('an unsigned registry entry (a proxy that cannot be asked) keeps the hold at its bound', async () => {
    const key = instancesKey(config.directory.redis.keyPrefix);
    await client.hset(key, 'proxy-unsigned', JSON.stringify({ url: 'http://127.0.0.1:1/', lastSeen: Date.now() }));
    try {
      const probe = proxiesInflight({ redis: client as never, keyPrefix: config.directory.redis.keyPrefix, adminToken: TOKEN, staleAfterMs: 5_000, pollMs: 20 });
      expect(await probe({ store: 'A', slot: 's1', user: 'alice' }, Date.now() + 200))
        .toEqual({ quiet: false, detail: 'registry entries that cannot be verified: proxy-unsigned' });
    } finally {
      await client.hdel(key, 'proxy-unsigned');
    }
  });

  it('a registered proxy that does not answer ends the probe at once with its name; no registry entry at all says so', async () => {
    const prefix = uniquePrefix('inflight-none');
    const empty = proxiesInflight({ redis: client as never, keyPrefix: prefix, adminToken: TOKEN, staleAfterMs: 5_000, pollMs: 20 });
    expect(await empty({ store: 'A', slot: 's1', user: 'alice' }, Date.now() + 200))
      .toEqual({ quiet: false, detail: 'no proxy instance in the registry to ask' });
    // A copy of the live entry under the real prefix cannot be forged (it is signed); a proxy that
    // died since its last heartbeat is the case: its signed entry names a port nobody listens on.
    const entries = await client.hgetall(instancesKey(config.directory.redis.keyPrefix));
    const [name, raw] = Object.entries(entries)[0]!;
    await running.stop();
    stopped = true;
    await client.hset(instancesKey(config.directory.redis.keyPrefix), name, raw);
    const probe = proxiesInflight({ redis: client as never, keyPrefix: config.directory.redis.keyPrefix, adminToken: TOKEN, staleAfterMs: 60_000, pollMs: 20 });
    const r = await probe({ store: 'A', slot: 's1', user: 'alice' }, Date.now() + 2_000);
    expect(r.quiet).toBe(false);
    expect(r.detail).toMatch(/^could not ask proxy-1: /);
  });
});
