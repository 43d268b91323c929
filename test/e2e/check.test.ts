/**
 * `storeroute check replication` against real Cyrus 3.6 slots: one store of two slots on two
 * "machines" with rolling replication, an embedded directory naming them, and the CLI run
 * in-process. Each scenario breaks the replica in one known way and the report must say exactly
 * what differs (user, mailbox, what, which side) and exit with the documented code.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { ImapFlow } from 'imapflow';
import { parse, stringify } from 'yaml';
import { CyrusSlot, CYRUS_PORTS } from './stack/cyrus.js';
import { startSyslog, type SyslogCapture } from './stack/syslog.js';
import { makeWorkDir, removeWorkDir } from './stack/workdir.js';
import { sendLmtp } from './stack/mail.js';
import { waitFor } from '../helpers/ports.js';
import { testLogger, testRegistry } from '../helpers/logger.js';
import { checkCli } from '../cli/check-harness.js';
import { parseConfig } from '../../src/config/index.js';
import { createDirectory, type Directory } from '../../src/directory/index.js';
import { startAgent, type Agent } from '../../src/agent/index.js';
import type { CheckResult } from '../../src/check/index.js';

const NET = process.env.STOREROUTE_E2E_CHECK_NET ?? '127.48';
const ADMIN_PW = 'check-e2e-admin';
const TOKEN = 'check-e2e-token-0123456789abcdef';
/** Nine users: from eight users of a slot in scope the checker lists the slot once (its catalog). */
const USERS = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi', 'ivan'];
const BIN = '/usr/lib/cyrus/bin';
/** The agent runs as root here; Cyrus's files must stay the cyrus user's. */
const AS_CYRUS = ['runuser', '-u', 'cyrus', '--'];

describe.sequential('check replication on real Cyrus slots', () => {
  let dir: string;
  let syslog: SyslogCapture;
  let master: CyrusSlot;
  let replica: CyrusSlot;
  let directory: Directory;
  let configFile: string;
  let agent: Agent | undefined;
  let failed = false;
  const replicaOnly = `replica-only.${randomBytes(4).toString('hex')}@e2e.test`;

  const check = (...args: string[]) => checkCli(['--config', configFile, 'check', 'replication', '--recheck-after', '100ms', ...args]);
  const checkJson = async (...args: string[]) => {
    const r = await check(...args, '--json');
    return { ...r, result: JSON.parse(r.stdout) as CheckResult };
  };

  function writeConfig(file: string, password: string): void {
    writeFileSync(file, stringify({
      log: { level: 'silent' },
      directory: { backend: 'embedded', embedded: { file: join(dir, 'directory.json') } },
      replay: { imap: { password, timeoutMs: 5_000 } },
      agent: {
        machine: 'km1', token: TOKEN, intervalMs: 500, listen: { port: 0 },
        slots: [{ name: 'k11', imapdConf: master.confFile }],
        repairs: { orphanFiles: false, startRollingClient: false },
        commands: {
          queueUser: [...AS_CYRUS, `${BIN}/cyr_synclog`, '-C', '{conf}', '-u', '{user}'],
          replayFile: [...AS_CYRUS, `${BIN}/sync_client`, '-C', '{conf}', '-S', '{peer}', '{channelArgs}', '-r', '-f', '{file}'],
        },
      },
    }));
  }

  /** Replication is done when the master's sync directory is empty (sync_client removes what it sent). */
  const drained = () => waitFor(() => readdirSync(join(master.dir, 'conf', 'sync')).length === 0, 20_000, 'the master\'s sync log to drain');

  function asUser<T>(slot: CyrusSlot, user: string, fn: (c: ImapFlow) => Promise<T>): Promise<T> {
    const c = new ImapFlow({ host: slot.ip, port: CYRUS_PORTS.imap, secure: false, logger: false,
      auth: { user: 'cyrus', pass: ADMIN_PW, authzid: user }, connectionTimeout: 5_000, greetingTimeout: 5_000, socketTimeout: 15_000 });
    return c.connect().then(() => fn(c)).finally(() => c.logout().catch(() => c.close()));
  }

  function track<T>(p: Promise<T>): Promise<T> {
    return p.catch((err: unknown) => {
      failed = true;
      throw err;
    });
  }

  beforeAll(async () => {
    dir = makeWorkDir('check');
    syslog = await startSyslog(dir);
    master = new CyrusSlot({ name: 'k11', machine: 'km1', ip: `${NET}.1.1`, baseDir: dir, adminPassword: ADMIN_PW });
    replica = new CyrusSlot({ name: 'k21', machine: 'km2', ip: `${NET}.2.1`, baseDir: dir, adminPassword: ADMIN_PW });
    configFile = join(dir, 'storeroute.yaml');
    writeConfig(configFile, ADMIN_PW);
    await Promise.all([master.start(), replica.start()]);
    for (const u of USERS) await master.createMailbox(u);
    await master.startReplication(replica);
    directory = await createDirectory(parseConfig({ directory: { backend: 'embedded', embedded: { file: join(dir, 'directory.json') } } }).directory,
      { logger: testLogger(), metrics: testRegistry() });
    await directory.createSlot({ name: 'k11', machine: 'km1', ip: master.ip }, 'test');
    await directory.createSlot({ name: 'k21', machine: 'km2', ip: replica.ip }, 'test');
    await directory.createStore({ name: 'S', slots: ['k11', 'k21'], preferredMaster: 'k11' }, 'test');
    for (const u of USERS) await directory.createUser({ name: u, store: 'S' }, 'test');
  });

  afterAll(async () => {
    if (failed) console.log(`--- cyrus (syslog) ---\n${syslog?.tail(60)}\n${master?.logTail()}`);
    await agent?.close();
    await directory?.close();
    await master?.stopReplication();
    await Promise.all([master?.stop(), replica?.stop()]);
    await syslog?.close();
    if (dir) removeWorkDir(dir);
  });

  it('after deliveries and replication every user is identical (exit 0), quick and deep', () => track((async () => {
    for (let i = 0; i < 2; i++) await sendLmtp(master.ip, CYRUS_PORTS.lmtp, { from: 's@e2e.test', to: USERS.map((u) => `${u}@e2e.test`), subject: `mail ${i}` });
    await asUser(master, 'dave', (c) => c.mailboxCreate('INBOX.Archive'));
    await drained();
    const quick = await check('--all');
    expect(quick.stderr).toBe('');
    expect(quick.stdout).toMatch(/^replication check \(quick\) of 9 user\(s\), all users: 9 identical, 0 different, 0 in flight, 0 not checked \(\d+\.\d s\)\n$/);
    expect(quick.code).toBe(0);
    const deep = await checkJson('--all', '--deep=all');
    expect(deep.code).toBe(0);
    expect(deep.result.figures).toMatchObject({ mode: 'deep-all', full: true, usersChecked: 9, usersIdentical: 9, differences: 0, exitCode: 0 });
  })()));

  it('a message delivered straight to the replica: reported on the user\'s INBOX, --deep names it (exit 1)', () => track((async () => {
    await sendLmtp(replica.ip, CYRUS_PORTS.lmtp, { from: 's@e2e.test', to: ['alice@e2e.test'], subject: 'only here', messageId: replicaOnly });
    const quick = await checkJson('--user', 'alice');
    expect(quick.code).toBe(1);
    expect(quick.result.differences).toEqual([{ user: 'alice', store: 'S', masterSlot: 'k11', replicaSlot: 'k21', mailbox: 'user.alice',
      field: 'synccrcs', master: expect.stringMatching(/^\d+ \d+$/), replica: expect.stringMatching(/^\d+ \d+$/), side: 'both' }]);
    const text = await check('--user', 'alice', '--deep');
    expect(text.code).toBe(1);
    expect(text.stdout).toMatch(/\n {2}alice +k11→k21 +user\.alice +synccrcs +\d+ \d+ +\d+ \d+ +-\n/);
    expect(text.stdout).toMatch(new RegExp(`\\n {2}alice +k11→k21 +user\\.alice +message uid 3 +\\(missing\\) +<${replicaOnly}> \\d+ B \\S+ +<${replicaOnly}>\\n`));
  })()));

  it('with replication stopped: a flag set only on the master, a mailbox created only on the master (exit 1)', () => track((async () => {
    await master.stopReplication();
    await asUser(master, 'bob', async (c) => {
      const lock = await c.getMailboxLock('INBOX');
      try {
        await c.messageFlagsAdd('1', ['\\Flagged'], { uid: true });
      } finally {
        lock.release();
      }
    });
    await asUser(master, 'carol', (c) => c.mailboxCreate('INBOX.Projects'));
    const r = await checkJson('--store', 'S');
    expect(r.code).toBe(1);
    expect(r.result.differences.map((d) => [d.user, d.mailbox, d.field, d.side])).toEqual([
      ['alice', 'user.alice', 'synccrcs', 'both'], ['bob', 'user.bob', 'synccrcs', 'both'], ['carol', 'user.carol.Projects', 'mailbox', 'master-only'],
    ]);
    expect(r.result.figures).toMatchObject({ usersIdentical: 6, usersDifferent: 3, full: false });
    const deep = await checkJson('--user', 'bob', '--deep');
    expect(deep.result.differences.filter((d) => d.field !== 'synccrcs')).toEqual([expect.objectContaining({
      mailbox: 'user.bob', field: 'flags', uid: 1, master: '\\Flagged', replica: '', side: 'both' })]);
  })()));

  it('a store failing over: its differing users are in flight, not different (exit 75)', () => track((async () => {
    await directory.setStoreState('S', 'failing-over', 'test');
    try {
      const r = await checkJson('--user', 'bob');
      expect(r.code).toBe(75);
      expect(r.result.differences).toEqual([]);
      expect(r.result.inFlight).toEqual([{ user: 'bob', store: 'S', reason: 'store S is failing over' }]);
    } finally {
      await directory.setStoreState('S', 'active', 'test');
    }
  })()));

  it('--repair: a user whose changes never reached the sync log is queued by the agent and ends identical', () => track((async () => {
    // The log is lost (as after a crash of the master's disk cache): replication alone never sends bob's flag.
    for (const f of readdirSync(join(master.dir, 'conf', 'sync'))) rmSync(join(master.dir, 'conf', 'sync', f), { recursive: true, force: true });
    await master.startReplication(replica);
    expect((await checkJson('--user', 'bob')).code).toBe(1);
    agent = await startAgent({ config: parseConfig(readYaml(configFile)).agent, obs: { logger: testLogger(), metrics: testRegistry() },
      publish: (report) => directory.publishStatus('agent', 'km1', report), layout: () => directory.snapshot() });
    const r = await checkJson('--user', 'bob', '--user', 'carol', '--repair', '--agent', `km1=${agent.url}`);
    expect(r.result.repairs).toEqual([{ user: 'bob', slot: 'k11', queued: true }, { user: 'carol', slot: 'k11', queued: true }]);
    expect(r.result.figures).toMatchObject({ usersIdentical: 2, usersDifferent: 0 });
    expect(r.code).toBe(0);
  })()));

  it('a user the master has not sent yet by its agent\'s report is in flight, not different (exit 75)', () => track((async () => {
    // A rolling client whose peer never answers: it runs, and the log keeps what it cannot send.
    await master.stopReplication();
    await master.startReplication({ ip: `${NET}.9.9` } as unknown as CyrusSlot);
    try {
      await sendLmtp(master.ip, CYRUS_PORTS.lmtp, { from: 's@e2e.test', to: ['bob@e2e.test'], subject: 'not sent yet' });
      await waitFor(async () => {
        const s = (await agent!.measureNow()).slots[0]!;
        return s.users.includes('bob') && s.rollingClient.running;
      }, 10_000, 'the agent to report bob pending under a running client');
      const r = await checkJson('--user', 'bob');
      expect(r.result.differences).toEqual([]);
      expect(r.result.inFlight).toEqual([{ user: 'bob', store: 'S', reason: expect.stringMatching(/^replication from k11 is lagging \(\d+ bytes pending\) with this user queued$/) }]);
      expect(r.code).toBe(75);
    } finally {
      await master.startReplication(replica);
    }
  })()));

  it('bad input: an unknown user; a wrong admin password names each slot, one failed login per slot (exit 2)', () => track((async () => {
    expect(await check('--user', 'nobody')).toMatchObject({ code: 2, stderr: 'error [CHECK_UNKNOWN_USER]: user "nobody" does not exist\n' });
    const wrong = join(dir, 'wrong-password.yaml');
    writeConfig(wrong, 'not-the-password');
    const before = badLogins();
    const r = await checkCli(['--config', wrong, 'check', 'replication', '--all']);
    expect(r.code).toBe(2);
    for (const s of [master, replica]) {
      expect(r.stderr).toContain(`error [IMAP_AUTH_FAILED]: slot ${s.name} (${s.ip}:143) refused the admin login (authentication failure): check replay.imap.user and replay.imap.password\n`);
    }
    expect(r.stdout).toMatch(/: 0 identical, 0 different, 0 in flight, 9 not checked/);
    if (syslog.file) expect(badLogins() - before).toBe(2);
  })()));

  it('the replica slot stopped: every user is listed as not checked, never identical (exit 75)', () => track((async () => {
    await master.stopReplication();
    await replica.stop();
    const r = await checkJson('--all');
    expect(r.code).toBe(75);
    expect(r.result.unchecked.map((u) => [u.user, u.code, u.slot])).toEqual(USERS.map((u) => [u, 'IMAP_UNREACHABLE', 'k21']));
    expect(r.result.figures).toMatchObject({ usersChecked: 0, usersUnchecked: 9, exitCode: 75 });
    expect(r.stderr).toMatch(/^error \[IMAP_UNREACHABLE\]: slot k21 \(127\.\d+\.2\.1:143\): login failed/);
  })()));

  function badLogins(): number {
    return syslog.file ? readFileSync(syslog.file, 'utf8').split('\n').filter((l) => l.includes('badlogin')).length : 0;
  }
});

function readYaml(file: string): Record<string, unknown> {
  return parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
}
