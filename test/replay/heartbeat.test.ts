/**
 * The instance heartbeat against a real redis-server: the entry it writes is signed with a key
 * derived from admin.token (so `storeroute replay` can tell it from a planted one), and stop()
 * leaves nothing behind even while the key is still being derived. It closes only a connection
 * it opened itself.
 */
import { describe, expect, it } from 'vitest';
import { startHeartbeat } from '../../src/replay/heartbeat.js';
import { parseConfig } from '../../src/config/index.js';
import { decodeInstance, instancesKey, registryKey, verifyInstance } from '../../src/replay/instances.js';
import { waitFor } from '../helpers/ports.js';
import { testLogger, testRegistry } from '../helpers/logger.js';
import { uniquePrefix, useRedisServer } from '../helpers/redis.js';

const TOKEN = 'hb-token-0123456789abcdef';

describe('instance heartbeat', () => {
  const rs = useRedisServer();

  // As main.ts runs it: writing through a rs.client it borrows (here the test's own).
  const start = (prefix: string, token: string | undefined) => startHeartbeat({
    redis: rs.client, keyPrefix: prefix,
    name: 'proxy1', url: 'http://10.0.0.5:9025', intervalMs: 60_000, obs: { logger: testLogger(), metrics: testRegistry() }, token,
  });

  it('signs its entry with a key derived from admin.token: it verifies under that token only', async () => {
    const prefix = uniquePrefix('hb');
    const hb = start(prefix, TOKEN);
    const raw = await waitFor(() => rs.client.hget(instancesKey(prefix), 'proxy1'), 5_000, 'heartbeat entry');
    const entry = decodeInstance(raw)!;
    expect(entry).toMatchObject({ url: 'http://10.0.0.5:9025', sig: expect.stringMatching(/^v1:[A-Za-z0-9_-]{43}$/) as unknown });
    expect(raw).not.toContain(TOKEN);
    expect(verifyInstance({ name: 'proxy1', ...entry }, await registryKey(TOKEN))).toBeNull();
    expect(verifyInstance({ name: 'proxy1', ...entry }, await registryKey('another-token-0123456789'))).toBe('INSTANCE_BAD_SIGNATURE');
    expect(verifyInstance({ name: 'proxy2', ...entry }, await registryKey(TOKEN))).toBe('INSTANCE_BAD_SIGNATURE');
    await hb.stop();
    expect(await rs.client.hexists(instancesKey(prefix), 'proxy1')).toBe(0);
    expect(rs.client.status).toBe('ready'); // a borrowed rs.client is left open for its owner
  });

  it('with only the Redis config, opens its own connection and closes it in stop()', async () => {
    const prefix = uniquePrefix('hb');
    const hb = startHeartbeat({
      config: parseConfig({ directory: { backend: 'redis', redis: { url: rs.server.url, keyPrefix: prefix } } }).directory.redis,
      name: 'proxy1', url: 'http://10.0.0.5:9025', intervalMs: 60_000, obs: { logger: testLogger(), metrics: testRegistry() }, token: TOKEN,
    });
    await waitFor(() => rs.client.hget(instancesKey(prefix), 'proxy1'), 5_000, 'heartbeat entry');
    expect(await rs.client.client('LIST')).toContain('name=storeroute:heartbeat ');
    await hb.stop();
    expect(await rs.client.hexists(instancesKey(prefix), 'proxy1')).toBe(0);
    await waitFor(async () => !(await rs.client.client('LIST') as string).includes('name=storeroute:heartbeat '), 5_000, 'its connection closed');
  });

  it('without a token writes an unsigned entry (which replay skips)', async () => {
    const prefix = uniquePrefix('hb');
    const hb = start(prefix, undefined);
    const entry = decodeInstance(await waitFor(() => rs.client.hget(instancesKey(prefix), 'proxy1'), 5_000, 'heartbeat entry'))!;
    expect(verifyInstance({ name: 'proxy1', ...entry }, await registryKey(TOKEN))).toBe('INSTANCE_UNSIGNED');
    await hb.stop();
  });

  it('stopped while the key is still being derived, it does not register afterwards', async () => {
    const prefix = uniquePrefix('hb');
    const hb = start(prefix, TOKEN);
    await hb.stop();
    // stop() waits for the beat in flight, so nothing can be written after it returns.
    expect(await rs.client.hexists(instancesKey(prefix), 'proxy1')).toBe(0);
  });
});
