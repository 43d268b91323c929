/**
 * The LMTP proxy on the Redis directory, with Redis going away under it: every answer while the
 * directory cannot be read is a 451 (never a 550 that would bounce mail), and routing resumes,
 * with no stale answer, once Redis is back.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { parseConfig } from '../../src/config/index.js';
import { createDirectory, type Directory } from '../../src/directory/index.js';
import { createLmtpServer, type LmtpServer } from '../../src/lmtp/index.js';
import { startLmtpBackend, type LmtpBackend } from '../helpers/lmtp-backend.js';
import { startRedis, uniquePrefix, type RedisServer } from '../helpers/redis.js';
import { testLogger, testRegistry } from '../helpers/logger.js';
import { waitFor } from '../helpers/ports.js';
import { WireClient } from '../lmtp/wire-client.js';

const UNAVAILABLE = '451 4.3.0 Directory temporarily unavailable, try again later';

let redis: RedisServer;
let a: LmtpBackend;
let b: LmtpBackend;
let directory: Directory;
let writer: Directory;
let server: LmtpServer;
let port: number;

/** Creates what is missing (a restore may be retried after a half-applied attempt). */
async function layout(dir: Directory): Promise<void> {
  if (!(await dir.getSlot('a1'))) await dir.createSlot({ name: 'a1', machine: 'm1', ip: '127.0.0.1', lmtp: a.port }, 'test');
  if (!(await dir.getSlot('b1'))) await dir.createSlot({ name: 'b1', machine: 'm2', ip: '127.0.0.1', lmtp: b.port }, 'test');
  if (!(await dir.getStore('s1'))) await dir.createStore({ name: 's1', slots: ['a1', 'b1'], preferredMaster: 'a1' }, 'test');
  if (!(await dir.getUser('alice'))) await dir.createUser({ name: 'alice', store: 's1' }, 'test');
}

async function rcpt(address: string): Promise<string> {
  const { client } = await WireClient.open(port);
  try {
    await client.cmd('LHLO test');
    await client.cmd('MAIL FROM:<sender@example.org>');
    return await client.cmd(`RCPT TO:<${address}>`);
  } finally {
    client.close();
  }
}

beforeAll(async () => {
  redis = await startRedis();
  [a, b] = await Promise.all([startLmtpBackend(), startLmtpBackend()]);
  const config = parseConfig({
    directory: { backend: 'redis', redis: { url: redis.url, keyPrefix: uniquePrefix('lmtp'), commandTimeoutMs: 300, connectTimeoutMs: 500 } },
    lmtp: { listen: { host: '127.0.0.1', port: 0 }, hostname: 'proxy.test' },
  });
  const obs = { logger: testLogger(), metrics: testRegistry() };
  writer = await createDirectory({ ...config.directory, cache: { ...config.directory.cache, enabled: false } }, obs);
  await layout(writer);
  directory = await createDirectory(config.directory, obs);
  server = createLmtpServer({ config: config.lmtp, journalConfig: config.journal, directory, obs });
  port = (await server.listen()).port!;
});

afterAll(async () => {
  await server?.close(0);
  await directory?.close();
  await writer?.close();
  await Promise.all([a?.close(), b?.close()]);
  await redis?.close();
});

describe('LMTP proxy while the Redis directory is unreachable', () => {
  it('routes normally while Redis is up (the route is now cached)', async () => {
    expect(await rcpt('alice@example.org')).toMatch(/^250 /);
    expect(await rcpt('nobody@example.org')).toBe('550 5.1.1 No such user here');
  });

  it('answers 451 4.3.0, never 550, for known and unknown users once Redis is gone', async () => {
    await redis.stop(true);
    // The cache may not be trusted once the invalidation channel is down: even the cached user tempfails.
    await waitFor(async () => (await rcpt('alice@example.org')) === UNAVAILABLE, 5_000, 'cache bypass after Redis loss');
    expect(await rcpt('nobody@example.org')).toBe(UNAVAILABLE);
    expect(a.messages.length + b.messages.length).toBe(0);
  });

  it('treats a Redis that came back empty as unavailable, not as "every user unknown"', async () => {
    await redis.start();
    // No persistence: the directory is gone. Bouncing every recipient with 550 would be a disaster;
    // an uninitialised directory must tempfail until an operator restores it.
    // Wait until the proxy reaches the new Redis (re-subscribed, cache trusted again) …
    const ready = await waitFor(async () => (directory as unknown as { cacheLive?: boolean }).cacheLive !== false, 10_000, 'feed back');
    expect(ready).toBe(true);
    // … and still: unknown to an empty directory is not "unknown user".
    expect(await rcpt('alice@example.org')).toBe(UNAVAILABLE);
    expect(await rcpt('nobody@example.org')).toBe(UNAVAILABLE);
  });

  it('resumes once Redis is back, and routes by what Redis says then, not by what was cached', async () => {
    // The restarted Redis was restored from a layout in which s1 has failed over to b1.
    // Retried: the first attempt may fail (or half-apply) while the client reconnects.
    await waitFor(() => layout(writer).then(() => true, () => false), 10_000, 'directory restored');
    await writer.failover('s1', { to: 'b1' }, 'test');
    await waitFor(async () => /^250 /.test(await rcpt('alice@example.org')), 10_000, 'routing resumed');
    const { client } = await WireClient.open(port);
    try {
      await client.cmd('LHLO test');
      await client.cmd('MAIL FROM:<sender@example.org>');
      expect(await client.cmd('RCPT TO:<alice@example.org>')).toMatch(/^250 /);
      expect(await client.cmd('DATA')).toMatch(/^354 /);
      client.write('Subject: after restart\r\n\r\nhello\r\n.\r\n');
      expect(await client.reply()).toMatch(/^250 /);
    } finally {
      client.close();
    }
    expect(b.messages.map((m) => m.recipients)).toEqual([['alice@example.org']]);
    expect(a.messages).toEqual([]);
  });
});
