/**
 * One Cyrus IMAP instance = one slot: its own imapd.conf / cyrus.conf, config directory, spool and
 * meta partitions and sasldb, with IMAP 143, POP3 110, LMTP 24 (`lmtpd -a`: the proxy does not
 * authenticate) and sync_server 2005 bound to the slot's own loopback IP. `master` starts as root,
 * binds, and drops to the `cyrus` user.
 *
 * Replication is rolling (`sync_log: 1` on every slot + `sync_client -r -S <peer>`), but the
 * sync_client is run by this harness, not by master's DAEMON section, so a drill can pause it
 * (the log keeps accumulating), resume it, or reverse the direction after a failover.
 */
import { mkdirSync, writeFileSync, chownSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from 'node:net';
import { ImapFlow } from 'imapflow';
import { spawnDaemon, run, tail, systemUser, type Daemon } from './proc.js';
import { waitFor } from '../../helpers/ports.js';

const CYRUS_BIN = '/usr/lib/cyrus/bin';
export const CYRUS_PORTS = { imap: 143, pop3: 110, lmtp: 24, sync: 2005 } as const;

export interface CyrusSlotOptions {
  /** Slot name (also the directory slot name). */
  name: string;
  machine: string;
  /** The slot's own loopback address, e.g. 127.42.1.1. */
  ip: string;
  /** Parent directory; the slot lives in `<baseDir>/<name>` (must be traversable by `cyrus`). */
  baseDir: string;
  /** Password of the `cyrus` admin (also used by sync_client to log in to a peer). */
  adminPassword: string;
}

export interface StoredMessage {
  uid: number;
  messageId: string;
  subject: string;
}

function chownTree(path: string, uid: number, gid: number): void {
  chownSync(path, uid, gid);
  if (!statSync(path).isDirectory()) return;
  for (const entry of readdirSync(path)) chownTree(join(path, entry), uid, gid);
}

/** Resolves once something accepts TCP on ip:port and sends its first line. */
export function greeting(ip: string, port: number, timeoutMs = 2_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host: ip, port });
    let buf = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`no greeting from ${ip}:${port}`));
    }, timeoutMs);
    sock.on('data', (d: Buffer) => {
      buf += d.toString();
      if (buf.includes('\n')) {
        clearTimeout(timer);
        sock.destroy();
        resolve(buf.split('\r\n')[0] ?? buf);
      }
    });
    sock.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

export class CyrusSlot {
  readonly name: string;
  readonly machine: string;
  readonly ip: string;
  readonly dir: string;
  readonly confFile: string;
  readonly servername: string;
  readonly #adminPassword: string;
  readonly #cyrus = systemUser('cyrus');
  #master: Daemon | null = null;
  #sync: Daemon | null = null;
  #syncPeer: string | null = null;

  constructor(opts: CyrusSlotOptions) {
    this.name = opts.name;
    this.machine = opts.machine;
    this.ip = opts.ip;
    this.dir = join(opts.baseDir, opts.name);
    this.confFile = join(this.dir, 'imapd.conf');
    this.servername = `${opts.name}.e2e.test`;
    this.#adminPassword = opts.adminPassword;
    this.#writeConfig();
  }

  get sasldb(): string {
    return join(this.dir, 'sasldb2');
  }

  /** The peer this slot currently replicates to, or null when its sync_client is not running. */
  get replicatingTo(): string | null {
    return this.#sync && !this.#sync.dead ? this.#syncPeer : null;
  }

  get running(): boolean {
    return this.#master !== null && !this.#master.dead;
  }

  #writeConfig(): void {
    const d = this.dir;
    const conf = join(d, 'conf');
    for (const sub of ['db', 'socket', 'proc', 'lock', 'log', 'msg', 'ptclient', 'quota', 'sieve', 'sync', 'user']) {
      mkdirSync(join(conf, sub), { recursive: true });
    }
    mkdirSync(join(d, 'spool'), { recursive: true });
    mkdirSync(join(d, 'meta'), { recursive: true });
    writeFileSync(this.confFile, [
      `configdirectory: ${conf}`,
      `partition-default: ${join(d, 'spool')}`,
      `metapartition-default: ${join(d, 'meta')}`,
      'metapartition_files: header index cache expunge squat annotations lock dav archivecache',
      'defaultpartition: default',
      `servername: ${this.servername}`,
      `syslog_prefix: cyrus-${this.name}`,
      'admins: cyrus',
      'allowplaintext: yes',
      'sasl_pwcheck_method: auxprop',
      'sasl_auxprop_plugin: sasldb',
      `sasl_sasldb_path: ${this.sasldb}`,
      'sasl_mech_list: PLAIN LOGIN',
      // "Exactly once" must be checked for real: Cyrus would otherwise hide a double delivery.
      'duplicatesuppression: 0',
      'unixhierarchysep: no',
      'altnamespace: no',
      'hashimapspool: true',
      'lmtp_downcase_rcpt: yes',
      'popminpoll: 0',
      `lmtpsocket: ${join(conf, 'socket', 'lmtp')}`,
      `idlesocket: ${join(conf, 'socket', 'idle')}`,
      `notifysocket: ${join(conf, 'socket', 'notify')}`,
      // Every slot logs changes, so replication can be started in either direction after a failover.
      'sync_log: 1',
      `sync_port: ${CYRUS_PORTS.sync}`,
      'sync_authname: cyrus',
      `sync_password: ${this.#adminPassword}`,
      // Without this sync_client first tries the IMAP port protocol and waits ~10 s to fall back.
      'sync_try_imap: no',
      '',
    ].join('\n'));
    const c = `-C ${this.confFile}`;
    writeFileSync(join(d, 'cyrus.conf'), [
      'START {',
      `  recover cmd="ctl_cyrusdb -r ${c}"`,
      '}',
      'SERVICES {',
      `  imap cmd="imapd ${c}" listen="${this.ip}:${CYRUS_PORTS.imap}" prefork=0`,
      `  pop3 cmd="pop3d ${c}" listen="${this.ip}:${CYRUS_PORTS.pop3}" prefork=0`,
      `  lmtp cmd="lmtpd -a ${c}" listen="${this.ip}:${CYRUS_PORTS.lmtp}" prefork=0`,
      `  sync cmd="sync_server ${c}" listen="${this.ip}:${CYRUS_PORTS.sync}" prefork=0`,
      '}',
      'EVENTS {',
      '}',
      'DAEMON {',
      '}',
      '',
    ].join('\n'));
    chownTree(d, this.#cyrus.uid, this.#cyrus.gid);
  }

  /** Adds (or resets) a SASL user in this slot's sasldb. */
  async setPassword(user: string, password: string): Promise<void> {
    await run('saslpasswd2', ['-p', '-c', '-f', this.sasldb, '-u', this.servername, user], { input: password });
    chownSync(this.sasldb, this.#cyrus.uid, this.#cyrus.gid);
  }

  async start(): Promise<void> {
    if (this.running) return;
    await this.setPassword('cyrus', this.#adminPassword);
    const logFile = join(this.dir, 'master.out');
    const master = spawnDaemon(`cyrus-${this.name}`, join(CYRUS_BIN, 'master'),
      ['-C', this.confFile, '-M', join(this.dir, 'cyrus.conf'), '-p', join(this.dir, 'master.pid')], { logFile });
    this.#master = master;
    await waitFor(async () => {
      if (master.dead) throw new Error(`Cyrus master ${this.name} exited: ${tail(logFile)}`);
      const [imap, lmtp] = await Promise.all([greeting(this.ip, CYRUS_PORTS.imap), greeting(this.ip, CYRUS_PORTS.lmtp)]);
      return imap.startsWith('* OK') && lmtp.startsWith('220');
    }, 20_000, `Cyrus ${this.name} on ${this.ip}`);
  }

  /** Clean shutdown (SIGTERM to master, which stops its services). */
  async stop(): Promise<void> {
    const m = this.#master;
    this.#master = null;
    await m?.stop(10_000);
  }

  /** An abrupt death: SIGKILL to master and every service it forked. */
  async crash(): Promise<void> {
    const m = this.#master;
    this.#master = null;
    await m?.kill();
  }

  /** Starts rolling replication from this slot to `peer` (its sync_server). */
  async startReplication(peer: CyrusSlot): Promise<void> {
    if (this.replicatingTo === peer.ip) return;
    await this.stopReplication();
    const logFile = join(this.dir, 'sync_client.out');
    this.#syncPeer = peer.ip;
    this.#sync = spawnDaemon(`sync-${this.name}`, join(CYRUS_BIN, 'sync_client'),
      ['-C', this.confFile, '-S', peer.ip, '-r', '-d', '1'],
      { logFile, uid: this.#cyrus.uid, gid: this.#cyrus.gid });
  }

  /** Pauses replication: changes keep being logged here and are sent when it starts again. */
  async stopReplication(): Promise<void> {
    const s = this.#sync;
    this.#sync = null;
    this.#syncPeer = null;
    await s?.stop(5_000);
  }

  #imap(authzid?: string): ImapFlow {
    return new ImapFlow({
      host: this.ip, port: CYRUS_PORTS.imap, secure: false, logger: false,
      auth: authzid ? { user: 'cyrus', pass: this.#adminPassword, authzid } : { user: 'cyrus', pass: this.#adminPassword },
      connectionTimeout: 5_000, greetingTimeout: 5_000, socketTimeout: 15_000,
    });
  }

  /** Creates `user.<name>` (the user's INBOX) as admin. */
  async createMailbox(user: string): Promise<void> {
    const client = this.#imap();
    await client.connect();
    try {
      await client.mailboxCreate(`user.${user}`);
    } finally {
      await client.logout();
    }
  }

  /** Every message in the user's INBOX (read as admin authorised as the user). */
  async inbox(user: string): Promise<StoredMessage[]> {
    const client = this.#imap(user);
    await client.connect();
    try {
      const lock = await client.getMailboxLock('INBOX', { readOnly: true });
      try {
        const out: StoredMessage[] = [];
        const status = client.mailbox;
        if (status && typeof status === 'object' && status.exists === 0) return out;
        for await (const msg of client.fetch('1:*', { uid: true, envelope: true })) {
          out.push({ uid: msg.uid, messageId: msg.envelope?.messageId ?? '', subject: msg.envelope?.subject ?? '' });
        }
        return out;
      } finally {
        lock.release();
      }
    } finally {
      await client.logout();
    }
  }

  logTail(lines = 30): string {
    return [tail(join(this.dir, 'master.out'), lines), tail(join(this.dir, 'sync_client.out'), lines)].join('\n');
  }
}
