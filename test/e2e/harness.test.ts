/**
 * The stack harness on its own, before storeroute is involved: Cyrus slots with replication,
 * postfix handing mail to a slot over LMTP, nginx asking a stub auth_http where to connect.
 * If this fails, the scenarios' failures say nothing about storeroute.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { CyrusSlot, CYRUS_PORTS } from './stack/cyrus.js';
import { Postfix } from './stack/postfix.js';
import { Nginx } from './stack/nginx.js';
import { startSyslog, type SyslogCapture } from './stack/syslog.js';
import { makeWorkDir, removeWorkDir } from './stack/workdir.js';
import { sendLmtp, sendSmtp, pop3Read, imapRead, newMessageId, bare } from './stack/mail.js';
import { waitFor } from '../helpers/ports.js';

const ADMIN_PW = 'admin-secret';
const USER = 'alice';
const USER_PW = 'alice pw 1';

describe.sequential('e2e harness (no storeroute)', () => {
  let dir: string;
  let syslog: SyslogCapture;
  let master: CyrusSlot;
  let replica: CyrusSlot;
  let postfix: Postfix;
  let nginx: Nginx;
  let stubAuth: Server;
  let failed = false;

  beforeAll(async () => {
    dir = makeWorkDir('harness');
    syslog = await startSyslog(dir);
    master = new CyrusSlot({ name: 'h11', machine: 'hm1', ip: '127.43.1.1', baseDir: dir, adminPassword: ADMIN_PW });
    replica = new CyrusSlot({ name: 'h21', machine: 'hm2', ip: '127.43.2.1', baseDir: dir, adminPassword: ADMIN_PW });
    await Promise.all([master.start(), replica.start()]);
    for (const s of [master, replica]) await s.setPassword(USER, USER_PW);
    await master.createMailbox(USER);
    await master.startReplication(replica);
  });

  afterAll(async () => {
    if (failed) {
      console.log(`--- syslog ---\n${syslog?.tail(80)}\n--- postfix ---\n${postfix?.logTail()}\n--- nginx ---\n${nginx?.logTail()}`);
    }
    await nginx?.stop();
    await new Promise((r) => (stubAuth ? stubAuth.close(r) : r(undefined)));
    await postfix?.stop();
    await master?.stopReplication();
    await Promise.all([master?.stop(), replica?.stop()]);
    await syslog?.close();
    if (dir) removeWorkDir(dir);
  });

  function track<T>(p: Promise<T>): Promise<T> {
    return p.catch((err: unknown) => {
      failed = true;
      throw err;
    });
  }

  it('delivers over LMTP to a slot and reads the mail back over IMAP and POP3', () => track((async () => {
    const messageId = newMessageId('lmtp');
    const t = await sendLmtp(master.ip, CYRUS_PORTS.lmtp, { from: 'sender@e2e.test', to: [`${USER}@e2e.test`], subject: 'harness lmtp', messageId });
    expect(t.rcpt[`${USER}@e2e.test`]).toBe('250 2.1.5 ok');
    expect(t.final).toHaveLength(1);
    expect(t.final[0]).toMatch(/^250 2\.1\.5 /);
    const inbox = await master.inbox(USER);
    expect(inbox.map((m) => bare(m.messageId))).toEqual([messageId]);
    const pop = await pop3Read(master.ip, CYRUS_PORTS.pop3, USER, USER_PW);
    expect(pop.messageIds).toEqual([messageId]);
  })()));

  it('replicates a delivery to the replica within seconds', () => track((async () => {
    const messageId = newMessageId('repl');
    const started = Date.now();
    await sendLmtp(master.ip, CYRUS_PORTS.lmtp, { from: 'sender@e2e.test', to: [`${USER}@e2e.test`], subject: 'harness repl', messageId });
    await waitFor(async () => (await replica.inbox(USER)).some((m) => bare(m.messageId) === messageId), 15_000, 'the replica to receive the delivery');
    // Exactly once on each side: replication copied it, it did not duplicate it.
    expect((await replica.inbox(USER)).filter((m) => bare(m.messageId) === messageId)).toHaveLength(1);
    expect((await master.inbox(USER)).filter((m) => bare(m.messageId) === messageId)).toHaveLength(1);
    console.log(`e2e harness: replicated in ${Date.now() - started} ms`);
  })()));

  it('postfix hands mail for the domain to the LMTP next hop', () => track((async () => {
    postfix = new Postfix({ dir: join(dir, 'postfix'), domain: 'e2e.test', transport: `lmtp:inet:${master.ip}:${CYRUS_PORTS.lmtp}` });
    await postfix.start();
    const t = await sendSmtp(postfix.smtpPort, { from: 'sender@example.net', to: [`${USER}@e2e.test`], subject: 'harness smtp' });
    expect(t.final[0]).toMatch(/^250 2\.0\.0 Ok: queued as /);
    await waitFor(async () => (await master.inbox(USER)).some((m) => bare(m.messageId) === t.messageId), 20_000, 'postfix to deliver');
    expect(postfix.log()).toMatch(new RegExp(`relay=${master.ip.replace(/\./g, '\\.')}\\[${master.ip.replace(/\./g, '\\.')}\\]:24.*status=sent`));
    expect(await postfix.queue()).toEqual([]);
  })()));

  it('nginx proxies IMAP and POP3 logins to the server auth_http names', () => track((async () => {
    // A stub auth_http that sends every login to the replica: proves nginx's mail module works here.
    const asked: string[] = [];
    stubAuth = createServer((req, res) => {
      asked.push(`${String(req.headers['auth-protocol'])}:${String(req.headers['auth-user'])}:${String(req.headers['x-e2e-secret'])}`);
      const port = req.headers['auth-protocol'] === 'pop3' ? CYRUS_PORTS.pop3 : CYRUS_PORTS.imap;
      res.writeHead(200, { 'Auth-Status': 'OK', 'Auth-Server': replica.ip, 'Auth-Port': String(port) });
      res.end();
    });
    await new Promise<void>((r) => stubAuth.listen(0, '127.0.0.1', r));
    const addr = stubAuth.address();
    if (!addr || typeof addr !== 'object') throw new Error('stub auth_http did not bind');
    nginx = new Nginx({ dir: join(dir, 'nginx'), authHttp: `127.0.0.1:${addr.port}/auth`, authHeader: { name: 'X-E2E-Secret', value: 'shh' } });
    await nginx.start();
    // Everything delivered so far replicates to the replica, which is where nginx was sent.
    const onMaster = (await master.inbox(USER)).map((m) => bare(m.messageId)).sort();
    expect(onMaster).toHaveLength(3);
    await waitFor(async () => {
      const imap = await imapRead('127.0.0.1', nginx.imapPort, USER, USER_PW);
      return JSON.stringify([...imap.messageIds].sort()) === JSON.stringify(onMaster);
    }, 15_000, 'the replica, read through nginx, to hold all 3');
    const pop = await pop3Read('127.0.0.1', nginx.pop3Port, USER, USER_PW);
    expect(pop.count).toBe(3);
    expect(asked).toContain(`imap:${USER}:shh`);
    expect(asked).toContain(`pop3:${USER}:shh`);
  })()));
});
