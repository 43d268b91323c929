/**
 * The auth endpoint on a real Redis directory that goes away: logins are held with WAIT (never
 * "Invalid login or password", which would make clients drop a saved password or users think
 * theirs is wrong), then after holdMaxMs a temporary error; a Redis that comes back EMPTY is not
 * "every user unknown" but still unavailable; once the directory is restored logins route again.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/index.js';
import { createDirectory } from '../../src/directory/index.js';
import type { Directory } from '../../src/directory/types.js';
import { startRedis, uniquePrefix, type RedisServer } from '../helpers/redis.js';
import { testLogger, testRegistry } from '../helpers/logger.js';
import { waitFor } from '../helpers/ports.js';
import { startAuthRig, SLOT_A, SLOT_B, type AuthRig } from './setup.js';
import { exchange } from './wire.js';

const OK_A_IMAP = ['Auth-Status: OK', 'Auth-Server: 127.0.0.11', 'Auth-Port: 10143'];
const OK_B_IMAP = ['Auth-Status: OK', 'Auth-Server: 127.0.0.12', 'Auth-Port: 20143'];
const INVALID_WAIT = ['Auth-Status: Invalid login or password', 'Auth-Wait: 3'];
const WAIT = ['Auth-Status: WAIT', 'Auth-Wait: 1'];
const TEMPORARY = ['Auth-Status: Temporary server problem, try again later', 'Auth-Wait: 3', 'Auth-Error-Code: 451 4.3.0'];
const HOLD_MAX_MS = 800;

let redis: RedisServer;
let writer: Directory;
let directory: Directory;
let rig: AuthRig;

/** Creates what is missing (a restore may be retried after a half-applied attempt). */
async function layout(dir: Directory): Promise<void> {
  if (!(await dir.getSlot(SLOT_A.name))) await dir.createSlot({ ...SLOT_A }, 'test');
  if (!(await dir.getSlot(SLOT_B.name))) await dir.createSlot({ ...SLOT_B }, 'test');
  if (!(await dir.getStore('store1'))) await dir.createStore({ name: 'store1', slots: [SLOT_A.name, SLOT_B.name], preferredMaster: SLOT_A.name }, 'test');
  if (!(await dir.getUser('alice'))) await dir.createUser({ name: 'alice', store: 'store1' }, 'test');
}

const ask = (user: string, clientIp: string) => exchange(rig.port, { user, clientIp }).then((a) => a.auth);

/** Asks like nginx re-asking after each WAIT until the answer is something else; returns every answer. */
async function askUntilNotWait(user: string, clientIp: string): Promise<string[][]> {
  const seen: string[][] = [];
  await waitFor(async () => {
    const a = await ask(user, clientIp);
    seen.push(a);
    return a[0] !== WAIT[0];
  }, HOLD_MAX_MS + 5_000, `the hold of ${user} from ${clientIp} to run out`);
  return seen;
}

beforeAll(async () => {
  redis = await startRedis();
  const config = parseConfig({
    directory: { backend: 'redis', redis: { url: redis.url, keyPrefix: uniquePrefix('auth'), commandTimeoutMs: 300, connectTimeoutMs: 500 } },
  });
  const obs = { logger: testLogger(), metrics: testRegistry() };
  writer = await createDirectory({ ...config.directory, cache: { ...config.directory.cache, enabled: false } }, obs);
  await layout(writer);
  // The directory the auth server reads through, with its cache as in production.
  directory = await createDirectory(config.directory, obs);
  rig = await startAuthRig({ holdMaxMs: HOLD_MAX_MS }, { directory });
});

afterAll(async () => {
  await rig?.close();
  await directory?.close();
  await writer?.close();
  await redis?.close();
});

describe('auth_http on a Redis directory that goes away', () => {
  it('routes while Redis is up (the route is now cached), and refuses unknown users', async () => {
    expect(await ask('alice', '198.51.100.1')).toEqual(OK_A_IMAP);
    expect(await ask('nobody', '198.51.100.1')).toEqual(INVALID_WAIT);
  });

  it('holds every login with WAIT once Redis is stopped, then answers a temporary error after holdMaxMs', async () => {
    await redis.stop(true);
    // The cache cannot be trusted once its invalidation feed is down: even the cached user is held.
    await waitFor(async () => (await ask('alice', '198.51.100.2')).join() === WAIT.join(), 5_000, 'cache bypass after Redis loss');
    const alice = await askUntilNotWait('alice', '198.51.100.2');
    expect(alice.slice(0, -1).every((a) => a.join() === WAIT.join())).toBe(true);
    expect(alice.at(-1)).toEqual(TEMPORARY);
    // An unknown user is held too: the directory cannot say who is unknown right now.
    expect(await ask('nobody', '198.51.100.2')).toEqual(WAIT);
    expect(rig.logs.some((l) => l.msg === 'auth_directory_error' && l.code === 'DIRECTORY_UNAVAILABLE')).toBe(true);
    expect(rig.logs.filter((l) => l.msg === 'auth_wait').every((l) => l.reason === 'directory-unavailable')).toBe(true);
  });

  it('holds logins (WAIT, not "Invalid login") when Redis comes back empty', async () => {
    await redis.start();
    // Until the directory reaches the new, empty Redis the answer is WAIT for the outage; wait for
    // the lookup to fail for emptiness itself, so the WAITs below are about the empty directory.
    await waitFor(async () => {
      await ask('alice', '198.51.100.3');
      return rig.logs.some((l) => l.msg === 'auth_directory_error'
        && String((l.err as { message?: string } | undefined)?.message).includes('directory is empty'));
    }, 10_000, 'a lookup against the empty Redis');
    expect(await ask('alice', '198.51.100.4')).toEqual(WAIT);
    expect(await ask('nobody', '198.51.100.4')).toEqual(WAIT);
    expect(rig.logs.filter((l) => l.msg === 'auth_invalid' && l.clientIp !== '198.51.100.1')).toEqual([]);
    // And the hold is bounded there too.
    expect((await askUntilNotWait('nobody', '198.51.100.4')).at(-1)).toEqual(TEMPORARY);
  });

  it('routes again, by what Redis says now, once the directory is restored', async () => {
    // Retried: the first attempt may fail (or half-apply) while the client reconnects.
    await waitFor(() => layout(writer).then(() => true, () => false), 10_000, 'directory restored');
    await writer.failover('store1', { to: SLOT_B.name }, 'test');
    // A held login (198.51.100.4 ran out its hold above) and a fresh one both get the new master.
    await waitFor(async () => (await ask('alice', '198.51.100.4')).join() === OK_B_IMAP.join(), 10_000, 'routing resumed');
    expect(await ask('alice', '198.51.100.5')).toEqual(OK_B_IMAP);
    expect(await ask('nobody', '198.51.100.5')).toEqual(INVALID_WAIT);
  });
});

describe('auth_http on a Redis directory that answers too slowly', () => {
  it('holds a login whose lookup outlives lookupTimeoutMs (Redis paused by CLIENT PAUSE), and routes a cached user at once', async () => {
    const slow = await startAuthRig({ lookupTimeoutMs: 50 }, { directory });
    const { Redis } = await import('ioredis');
    const admin = new Redis({ port: redis.port, maxRetriesPerRequest: 0 });
    try {
      // alice is cached from the previous test; a never-seen name has to ask Redis.
      expect((await exchange(slow.port, { user: 'alice', clientIp: '198.51.100.6' })).auth).toEqual(OK_B_IMAP);
      // Redis holds every other client's commands for 500 ms (a busy or stalled server).
      expect(await admin.call('CLIENT', 'PAUSE', '500', 'ALL')).toBe('OK');
      const started = Date.now();
      expect((await exchange(slow.port, { user: 'never-seen', clientIp: '198.51.100.6' })).auth).toEqual(WAIT);
      expect(Date.now() - started).toBeLessThan(300); // our deadline, not Redis's commandTimeoutMs (300)
      expect(slow.logs.find((l) => l.msg === 'auth_directory_error')).toMatchObject({ code: 'DEADLINE_EXCEEDED' });
      expect((await exchange(slow.port, { user: 'alice', clientIp: '198.51.100.6' })).auth).toEqual(OK_B_IMAP);
    } finally {
      admin.disconnect();
      await slow.close();
    }
  });
});
