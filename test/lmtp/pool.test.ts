/** The backend session pool, against a real (raw) LMTP backend. */
import { afterEach, describe, expect, it } from 'vitest';
import { BackendPool } from '../../src/lmtp/pool.js';
import { testLogger } from '../helpers/logger.js';
import { waitFor } from '../helpers/ports.js';
import { startRawBackend, type RawBackend } from './raw-backend.js';

const timeouts = { connect: 1_000, greeting: 1_000, command: 30_000, data: 1_000, finalReply: 1_000 };
let be: RawBackend | null = null;
let pool: BackendPool | null = null;
afterEach(async () => { await pool?.close(); await be?.close(); pool = null; be = null; });

describe('backend pool', () => {
  it('discards, never RSETs, a session given back while it waits for its 354', async () => {
    be = await startRawBackend({ holdData: true });
    pool = new BackendPool({ lhloName: 'proxy.test', timeouts, maxSessionsPerSlot: 1, idleTimeoutMs: 60_000, logger: testLogger() });
    const target = { host: '127.0.0.1', port: be.port, slot: 'raw1' };
    const s = await pool.acquire(target, 1_000);
    await s.mailFrom('s@x.org');
    await s.rcpt('zed@example.com');
    const go = s.beginData().catch((e: unknown) => e);
    await waitFor(() => be!.connections[0]?.lines.includes('DATA'), 5_000, 'DATA at the backend');
    expect(s.inData).toBe(true);
    pool.release(s, false);
    expect(pool.stats()).toEqual([]); // the slot is free at once
    await waitFor(() => be!.open() === 0, 3_000, 'session closed');
    expect(await go).toMatchObject({ code: 'BACKEND_LOST' });
    expect(be.connections[0]!.lines).toEqual(['LHLO proxy.test', 'MAIL FROM:<s@x.org>', 'RCPT TO:<zed@example.com>', 'DATA']);
  });
});
