import { afterEach, describe, expect, it } from 'vitest';
import { hashPassword } from '../../src/auth/index.js';
import { waitFor } from '../helpers/ports.js';
import { startAuthRig, type AuthRig } from './setup.js';
import { exchange, nginxRequestBytes } from './wire.js';

const OK_A_IMAP = ['Auth-Status: OK', 'Auth-Server: 127.0.0.11', 'Auth-Port: 10143'];
const OK_B_IMAP = ['Auth-Status: OK', 'Auth-Server: 127.0.0.12', 'Auth-Port: 20143'];
const INVALID_WAIT = ['Auth-Status: Invalid login or password', 'Auth-Wait: 3'];
const INVALID_CLOSE = ['Auth-Status: Invalid login or password'];
const WAIT = ['Auth-Status: WAIT', 'Auth-Wait: 1'];
const TEMPORARY = ['Auth-Status: Temporary server problem, try again later', 'Auth-Wait: 3', 'Auth-Error-Code: 451 4.3.0'];
const PASSWORD = 'pw-that-must-never-be-logged';

let rig: AuthRig | undefined;
afterEach(async () => {
  if (rig) expect(rig.rawLogs()).not.toContain(PASSWORD);
  await rig?.close();
  rig = undefined;
});

describe('routing a login to the current master', () => {
  it('answers an imap login with the master slot address and imap port, in under 1 KB', async () => {
    rig = await startAuthRig();
    const a = await exchange(rig.port, { user: 'alice', pass: PASSWORD, protocol: 'imap' });
    expect(a.status).toBe(200);
    expect(a.auth).toEqual(OK_A_IMAP);
    expect(a.bytes).toBeLessThan(1024);
  });

  it('counts answers by protocol and result and times them in the duration histogram (Prometheus text)', async () => {
    rig = await startAuthRig();
    await exchange(rig.port, { user: 'alice', protocol: 'imap' });
    await exchange(rig.port, { user: 'alice', protocol: 'pop3' });
    await exchange(rig.port, { user: 'nobody', protocol: 'imap' });
    const text = await rig.metrics.metrics();
    expect(text).toContain('storeroute_auth_requests_total{protocol="imap",result="ok"} 1\n');
    expect(text).toContain('storeroute_auth_requests_total{protocol="pop3",result="ok"} 1\n');
    expect(text).toContain('storeroute_auth_requests_total{protocol="imap",result="invalid"} 1\n');
    expect(text).toContain('# TYPE storeroute_auth_request_duration_seconds histogram\n');
    expect(text).toContain('storeroute_auth_request_duration_seconds_bucket{le="+Inf",result="ok"} 2\n');
    expect(text).toContain('storeroute_auth_request_duration_seconds_count{result="invalid"} 1\n');
    expect(text).not.toContain('result="wait"'); // results never answered are not exported
    // Buckets are cumulative and end at the count.
    const ok = [...text.matchAll(/storeroute_auth_request_duration_seconds_bucket\{le="[^"]+",result="ok"\} (\d+)/g)].map((m) => Number(m[1]));
    expect(ok).toHaveLength(13);
    expect(ok.every((v, i) => i === 0 || v >= ok[i - 1]!)).toBe(true);
    expect(ok.at(-1)).toBe(2);
    expect(text).toContain('storeroute_auth_held_logins 0');
  });

  it('answers a pop3 login with the pop3 port of the master slot', async () => {
    rig = await startAuthRig();
    const a = await exchange(rig.port, { user: 'alice', pass: PASSWORD, protocol: 'pop3', clientHost: 'client.example' });
    expect(a.auth).toEqual(['Auth-Status: OK', 'Auth-Server: 127.0.0.11', 'Auth-Port: 10110']);
  });

  it('sends the next login to the new master after a failover between two requests', async () => {
    rig = await startAuthRig();
    expect((await exchange(rig.port, { user: 'alice' })).auth).toEqual(OK_A_IMAP);
    await rig.directory.failover('store1', { to: 'slot-b' }, 'test');
    expect((await exchange(rig.port, { user: 'alice' })).auth).toEqual(OK_B_IMAP);
  });

  it('tells nginx the directory name as Auth-User when the typed name differs (case, stripped domain)', async () => {
    rig = await startAuthRig();
    expect((await exchange(rig.port, { user: 'Alice' })).auth).toEqual([...OK_A_IMAP, 'Auth-User: alice']);
    expect((await exchange(rig.port, { user: 'alice@example.org' })).auth).toEqual([...OK_A_IMAP, 'Auth-User: alice']);
    expect((await exchange(rig.port, { user: 'bob@example.com' })).auth).toEqual(OK_A_IMAP);
  });

  it('does not strip domains outside localDomains when the list is set', async () => {
    rig = await startAuthRig({ localDomains: ['example.net'] });
    expect((await exchange(rig.port, { user: 'alice@example.net' })).auth).toEqual([...OK_A_IMAP, 'Auth-User: alice']);
    expect((await exchange(rig.port, { user: 'alice@example.org' })).auth).toEqual(INVALID_WAIT);
  });

  it('keeps answering on one keep-alive connection', async () => {
    rig = await startAuthRig();
    const { connect } = await import('node:net');
    const sock = connect(rig.port, '127.0.0.1');
    const one = nginxRequestBytes({ user: 'alice', extra: { Connection: 'keep-alive' } });
    let got = '';
    sock.on('data', (c) => { got += c.toString('latin1'); });
    sock.write(Buffer.concat([one, one]));
    await waitFor(() => (got.match(/\r\n\r\n/g) ?? []).length === 2, 5_000, 'two answers');
    // Both answered OK with alice's route, and the connection was kept for more.
    const answers = got.split('\r\n\r\n').filter(Boolean);
    expect(answers).toHaveLength(2);
    for (const a of answers) {
      expect(a).toContain('Auth-Status: OK');
      expect(a).toContain('Auth-Server: 127.0.0.11');
      expect(a).toContain('Connection: keep-alive');
    }
    expect(sock.destroyed).toBe(false);
    sock.destroy();
  });
});

describe('refusing a login', () => {
  it('answers an unknown user exactly like a wrong password (directory verification)', async () => {
    rig = await startAuthRig({ verify: 'directory' });
    const hash = await hashPassword('right', { N: 1024, r: 8, p: 1 });
    await rig.directory.setPasswordHash('alice', hash, 'test');
    const wrong = await exchange(rig.port, { user: 'alice', pass: PASSWORD });
    const unknown = await exchange(rig.port, { user: 'nobody', pass: PASSWORD });
    expect(wrong.auth).toEqual(INVALID_WAIT);
    expect(unknown.raw).toBe(wrong.raw);
    expect((await exchange(rig.port, { user: 'alice', pass: 'right' })).auth).toEqual(OK_A_IMAP);
    // A user without a hash cannot log in in directory mode.
    expect((await exchange(rig.port, { user: 'bob@example.com', pass: 'right' })).auth).toEqual(INVALID_WAIT);
  });

  it('answers an unknown user with a failure in backend verification mode, and a suspended user the same way', async () => {
    rig = await startAuthRig();
    expect((await exchange(rig.port, { user: 'nobody' })).auth).toEqual(INVALID_WAIT);
    await rig.directory.setUserState('alice', 'suspended', 'test');
    expect((await exchange(rig.port, { user: 'alice' })).auth).toEqual(INVALID_WAIT);
  });

  it('drops Auth-Wait once Auth-Login-Attempt reaches the limit, so nginx closes', async () => {
    rig = await startAuthRig({ maxLoginAttempts: 4 });
    expect((await exchange(rig.port, { user: 'nobody', attempt: 3 })).auth).toEqual(INVALID_WAIT);
    expect((await exchange(rig.port, { user: 'nobody', attempt: 4 })).auth).toEqual(INVALID_CLOSE);
    expect((await exchange(rig.port, { user: 'nobody', attempt: 12 })).auth).toEqual(INVALID_CLOSE);
  });

  it('refuses methods that need a stored plaintext (apop, cram-md5)', async () => {
    rig = await startAuthRig();
    expect((await exchange(rig.port, { user: 'alice', method: 'cram-md5' })).auth)
      .toEqual(['Auth-Status: Authentication method not supported', 'Auth-Error-Code: 504 5.5.4']);
  });

  it('refuses smtp clearly when no relay is configured, and routes it when one is', async () => {
    rig = await startAuthRig();
    expect((await exchange(rig.port, { user: 'alice', protocol: 'smtp' })).auth)
      .toEqual(['Auth-Status: SMTP is not served here', 'Auth-Error-Code: 550 5.7.1']);
    await rig.close();
    rig = await startAuthRig({ smtp: { server: '127.0.0.20', port: 587 } });
    expect((await exchange(rig.port, { user: 'alice', protocol: 'smtp' })).auth)
      .toEqual(['Auth-Status: OK', 'Auth-Server: 127.0.0.20', 'Auth-Port: 587']);
    expect((await exchange(rig.port, { user: null, pass: null, method: 'none', protocol: 'smtp' })).auth)
      .toEqual(['Auth-Status: OK', 'Auth-Server: 127.0.0.20', 'Auth-Port: 587']);
  });

  it('checks smtp passwords in directory mode and does not hold submission for a failing-over mailbox store', async () => {
    rig = await startAuthRig({ verify: 'directory', smtp: { server: '127.0.0.20', port: 587 } });
    await rig.directory.setPasswordHash('alice', await hashPassword('right', { N: 1024, r: 8, p: 1 }), 'test');
    await rig.directory.setStoreState('store1', 'failing-over', 'test');
    expect((await exchange(rig.port, { user: 'Alice', pass: 'right', protocol: 'smtp' })).auth)
      .toEqual(['Auth-Status: OK', 'Auth-Server: 127.0.0.20', 'Auth-Port: 587', 'Auth-User: alice']);
    expect((await exchange(rig.port, { user: 'alice', pass: PASSWORD, protocol: 'smtp' })).auth).toEqual(INVALID_WAIT);
    expect((await exchange(rig.port, { user: 'alice', pass: 'right', protocol: 'imap' })).auth).toEqual(WAIT);
  });
});

describe('holding a login while its store cannot take it', () => {
  it('answers WAIT while the store fails over, then a temporary error after holdMaxMs, then OK once active', async () => {
    rig = await startAuthRig({ holdMaxMs: 300 });
    await rig.directory.setStoreState('store1', 'failing-over', 'test');
    expect((await exchange(rig.port, { user: 'alice' })).auth).toEqual(WAIT);
    // nginx re-asks with the same attempt number; we keep answering WAIT until the hold runs out.
    const answers: string[][] = [];
    await waitFor(async () => {
      const a = await exchange(rig!.port, { user: 'alice' });
      answers.push(a.auth);
      return a.auth[0] !== 'Auth-Status: WAIT';
    }, 5_000, 'the hold to run out');
    expect(answers.slice(0, -1).every((a) => a.join() === WAIT.join())).toBe(true);
    expect(answers.at(-1)).toEqual(TEMPORARY);
    // Past the attempt limit the temporary error carries no Auth-Wait either.
    expect((await exchange(rig.port, { user: 'alice', attempt: 10 })).auth).toEqual([TEMPORARY[0], TEMPORARY[2]]);
    await rig.directory.setStoreState('store1', 'active', 'test');
    expect((await exchange(rig.port, { user: 'alice' })).auth).toEqual(OK_A_IMAP);
  });

  it('holds while the store is down, the user is moving or the master slot is not up', async () => {
    rig = await startAuthRig();
    await rig.directory.setStoreState('store1', 'down', 'test');
    expect((await exchange(rig.port, { user: 'alice' })).auth).toEqual(WAIT);
    await rig.directory.setStoreState('store1', 'active', 'test');
    await rig.directory.setSlotState('slot-a', 'maintenance', 'test');
    expect((await exchange(rig.port, { user: 'alice', protocol: 'pop3' })).auth).toEqual(WAIT);
    await rig.directory.setSlotState('slot-a', 'up', 'test');
    await rig.directory.createSlot({ name: 'slot-c', machine: 'm3', ip: '127.0.0.13' }, 'test');
    await rig.directory.createSlot({ name: 'slot-d', machine: 'm4', ip: '127.0.0.14' }, 'test');
    await rig.directory.createStore({ name: 'store2', slots: ['slot-c', 'slot-d'], preferredMaster: 'slot-c' }, 'test');
    await rig.directory.beginMove('alice', 'store2', 'test');
    expect((await exchange(rig.port, { user: 'alice' })).auth).toEqual(WAIT);
    await rig.directory.finishMove('alice', 'test');
    expect((await exchange(rig.port, { user: 'alice' })).auth).toEqual(['Auth-Status: OK', 'Auth-Server: 127.0.0.13', 'Auth-Port: 143']);
    expect(rig.logs.filter((l) => l.msg === 'auth_wait').map((l) => l.reason)).toEqual(['store-down', 'master-not-up', 'user-moving']);
  });

  it('answers a temporary error at once, never WAIT, with holdMaxMs 0', async () => {
    // (An unreachable or empty directory, with a real Redis stopped under it: redis-directory.test.ts.)
    rig = await startAuthRig({ holdMaxMs: 0 });
    await rig.directory.setStoreState('store1', 'failing-over', 'test');
    expect((await exchange(rig.port, { user: 'alice' })).auth).toEqual(TEMPORARY);
    expect(rig.logs.find((l) => l.msg === 'auth_temporary')).toMatchObject({ reason: 'store-failing-over', heldMs: 0 });
  });
});

describe('throttling failed logins', () => {
  it('grows Auth-Wait per client IP past perIp and refuses that IP even for a valid user; other IPs are unaffected', async () => {
    rig = await startAuthRig({ throttle: { perIp: 3, perUser: 100, maxWaitSeconds: 40 } });
    const waits: string[] = [];
    for (let i = 0; i < 3; i++) waits.push((await exchange(rig.port, { user: `nobody${i}`, clientIp: '198.51.100.7' })).auth.join('|'));
    expect(waits).toEqual([INVALID_WAIT.join('|'), INVALID_WAIT.join('|'), 'Auth-Status: Invalid login or password|Auth-Wait: 6']);
    const throttled = [];
    for (let i = 0; i < 3; i++) throttled.push((await exchange(rig.port, { user: 'alice', clientIp: '198.51.100.7' })).auth[1]);
    expect(throttled).toEqual(['Auth-Wait: 12', 'Auth-Wait: 24', 'Auth-Wait: 40']);
    expect((await exchange(rig.port, { user: 'alice', clientIp: '198.51.100.8' })).auth).toEqual(OK_A_IMAP);
    expect(rig.logs.filter((l) => l.msg === 'auth_throttled')).toHaveLength(3);
  });

  it('refuses a user past perUser only from addresses that failed themselves, and never counts successes', async () => {
    rig = await startAuthRig({ verify: 'directory', throttle: { perIp: 100, perUser: 2 } });
    await rig.directory.setPasswordHash('alice', await hashPassword('right', { N: 1024, r: 8, p: 1 }), 'test');
    for (let i = 0; i < 5; i++) expect((await exchange(rig.port, { user: 'alice', pass: 'right', clientIp: '198.51.100.1' })).auth).toEqual(OK_A_IMAP);
    await exchange(rig.port, { user: 'alice', pass: PASSWORD, clientIp: '203.0.113.5' });
    await exchange(rig.port, { user: 'alice', pass: PASSWORD, clientIp: '203.0.113.5' });
    // The attacker's address is refused even with the right password …
    const refused = await exchange(rig.port, { user: 'alice', pass: 'right', clientIp: '203.0.113.5' });
    expect(refused.auth[0]).toBe('Auth-Status: Invalid login or password');
    expect(refused.auth[1]).toBe('Auth-Wait: 12');
    // … while the owner, from an address with no failures, still gets in.
    expect((await exchange(rig.port, { user: 'alice', pass: 'right', clientIp: '198.51.100.1' })).auth).toEqual(OK_A_IMAP);
  });

  it('neither counts nor refuses exempt networks', async () => {
    rig = await startAuthRig({ throttle: { perIp: 1, exempt: ['198.51.100.0/24'] } });
    for (let i = 0; i < 4; i++) expect((await exchange(rig.port, { user: 'nobody', clientIp: '198.51.100.9' })).auth).toEqual(INVALID_WAIT);
    expect((await exchange(rig.port, { user: 'alice', clientIp: '198.51.100.9' })).auth).toEqual(OK_A_IMAP);
  });
});

describe('who may ask', () => {
  it('answers 403 without the shared secret or with a wrong one, and logs it', async () => {
    rig = await startAuthRig({ sharedSecret: { header: 'X-Storeroute-Secret', value: 's3cret' } });
    const missing = await exchange(rig.port, { user: 'alice' });
    expect(missing.status).toBe(403);
    expect(missing.auth).toEqual([]);
    expect((await exchange(rig.port, { user: 'alice', extra: { 'X-Storeroute-Secret': 'nope' } })).status).toBe(403);
    expect((await exchange(rig.port, { user: 'alice', extra: { 'X-Storeroute-Secret': 's3cret' } })).auth).toEqual(OK_A_IMAP);
    expect(rig.logs.filter((l) => l.msg === 'auth_forbidden').map((l) => l.why)).toEqual(['secret-missing', 'secret-wrong']);
    expect(rig.rawLogs()).not.toContain('s3cret');
  });

  it('answers 403 to addresses outside allowFrom', async () => {
    rig = await startAuthRig({ allowFrom: ['10.0.0.0/8'] });
    const a = await exchange(rig.port, { user: 'alice' });
    expect(a.status).toBe(403);
    expect(a.auth).toEqual([]);
    expect(rig.logs.find((l) => l.msg === 'auth_forbidden')).toMatchObject({ why: 'address-not-allowed', remote: '127.0.0.1' });
  });
});

describe('reading what nginx sends', () => {
  it('decodes escaped and UTF-8 names and passwords (and never logs the password)', async () => {
    rig = await startAuthRig({ verify: 'directory' });
    const pass = `${PASSWORD} 100% ü`;
    await rig.directory.setPasswordHash('alice', await hashPassword(pass, { N: 1024, r: 8, p: 1 }), 'test');
    expect((await exchange(rig.port, { user: 'alice', pass })).auth).toEqual(OK_A_IMAP);
    expect((await exchange(rig.port, { user: 'jösé', pass })).auth).toEqual(INVALID_WAIT);
    expect(rig.logs.find((l) => l.msg === 'auth_invalid')).toMatchObject({ user: 'jösé', why: 'unknown-user' });
  });

  it('refuses a CRLF (or NUL) in a user name without touching the directory, and closes', async () => {
    rig = await startAuthRig();
    const crlf = await exchange(rig.port, { user: 'alice\r\nAuth-Status: OK' });
    expect(crlf.auth).toEqual(INVALID_CLOSE);
    expect((await exchange(rig.port, { user: 'alice\u0000' })).auth).toEqual(INVALID_CLOSE);
    expect(rig.logs.filter((l) => l.msg === 'auth_bad_request').map((l) => l.problem)).toEqual(['bad-user', 'bad-user']);
  });

  it('answers missing headers with a clean refusal', async () => {
    rig = await startAuthRig();
    expect((await exchange(rig.port, { user: null })).auth).toEqual(INVALID_CLOSE);
    expect((await exchange(rig.port, { protocol: null })).auth).toEqual(INVALID_CLOSE);
    expect((await exchange(rig.port, { clientIp: null })).auth).toEqual(INVALID_CLOSE);
    expect((await exchange(rig.port, { attempt: null })).auth).toEqual(OK_A_IMAP);
    expect(rig.logs.filter((l) => l.msg === 'auth_bad_request').map((l) => l.problem))
      .toEqual(['missing-user', 'bad-protocol', 'missing-client-ip']);
  });

  it('answers a 10 KB header with 431 and keeps serving', async () => {
    rig = await startAuthRig();
    const big = await exchange(rig.port, { user: 'alice', pass: 'x'.repeat(10 * 1024) });
    expect(big.status).toBe(431);
    expect(big.auth).toEqual(INVALID_CLOSE);
    expect((await exchange(rig.port, { user: 'alice' })).auth).toEqual(OK_A_IMAP);
  });

  it('accepts a DEL byte in a password (nginx passes it through unescaped) and checks it in directory mode', async () => {
    rig = await startAuthRig({ verify: 'directory' });
    const pass = Buffer.from([0x61, 0x7f, 0x62]);
    await rig.directory.setPasswordHash('alice', await hashPassword('a\u007fb', { N: 1024, r: 8, p: 1 }), 'test');
    expect((await exchange(rig.port, { user: 'alice', pass })).auth).toEqual(OK_A_IMAP);
    expect((await exchange(rig.port, { user: 'alice', pass: Buffer.from([0x61, 0x7f, 0x63]) })).auth).toEqual(INVALID_WAIT);
  });
});
