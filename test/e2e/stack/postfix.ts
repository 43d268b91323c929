/**
 * A private postfix instance: its own config directory (`postfix -c DIR`), queue and data
 * directories, all under the suite's temporary directory. /etc/postfix is only read (postfix-files
 * as `meta_directory`); nothing is written there and no alternate_config_directories entry is
 * needed because the suite runs as root. The master runs in the foreground (`start-fg`) as our
 * child; it calls setsid(), so its group is tracked separately and killed at exit.
 *
 * Every mailbox recipient of `domain` goes to `virtual_transport` (storeroute's LMTP port). No
 * recipient map: postfix accepts every address of the domain and the LMTP next hop decides
 * (storeroute answers an unknown user `550 5.1.1`, so postfix bounces it).
 * Retry delays are cut to seconds so a deferred message comes back quickly.
 */
import { mkdirSync, writeFileSync, chownSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { spawnDaemon, run, tail, trackGroup, systemUser, type Daemon } from './proc.js';
import { freePort, waitFor } from '../../helpers/ports.js';
import { greeting } from './cyrus.js';

export interface PostfixOptions {
  dir: string;
  domain: string;
  /** postfix next hop, e.g. `lmtp:inet:127.0.0.1:2424`. */
  transport: string;
}

export interface QueuedMessage {
  queue_name: string;
  queue_id: string;
  recipients: { address: string; delay_reason?: string }[];
}

const MASTER_CF = `
smtp      inet  n       -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`;

export class Postfix {
  readonly dir: string;
  readonly confDir: string;
  readonly maillog: string;
  smtpPort = 0;
  readonly #opts: PostfixOptions;
  #daemon: Daemon | null = null;
  #untrack: (() => void) | null = null;

  constructor(opts: PostfixOptions) {
    this.#opts = opts;
    this.dir = opts.dir;
    this.confDir = join(opts.dir, 'conf');
    this.maillog = join(opts.dir, 'maillog');
  }

  async start(): Promise<void> {
    this.smtpPort = await freePort();
    const d = this.dir;
    const pf = systemUser('postfix');
    for (const sub of ['conf', 'queue', 'data']) mkdirSync(join(d, sub), { recursive: true });
    chownSync(join(d, 'data'), pf.uid, pf.gid);
    writeFileSync(join(this.confDir, 'main.cf'), [
      'compatibility_level = 3.6',
      `queue_directory = ${join(d, 'queue')}`,
      `data_directory = ${join(d, 'data')}`,
      'meta_directory = /etc/postfix',
      'mail_owner = postfix',
      'setgid_group = postdrop',
      'myhostname = mx.e2e.test',
      `mydomain = ${this.#opts.domain}`,
      `myorigin = ${this.#opts.domain}`,
      'inet_interfaces = 127.0.0.1',
      'inet_protocols = ipv4',
      'mydestination =',
      'local_recipient_maps =',
      'relay_domains =',
      'mynetworks = 127.0.0.0/8',
      `virtual_mailbox_domains = ${this.#opts.domain}`,
      `virtual_transport = ${this.#opts.transport}`,
      'smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination',
      'smtpd_banner = $myhostname ESMTP',
      // Deferred mail comes back within seconds, not the default 5-minute scan.
      'queue_run_delay = 2s',
      'minimal_backoff_time = 2s',
      'maximal_backoff_time = 4s',
      // A dead next hop is retried soon after it returns.
      'lmtp_connect_timeout = 5s',
      `maillog_file = ${this.maillog}`,
      `maillog_file_prefixes = ${d}`,
      'biff = no',
      '',
    ].join('\n'));
    writeFileSync(join(this.confDir, 'master.cf'), MASTER_CF.replace(/^smtp {6}inet/m, `127.0.0.1:${this.smtpPort} inet`));
    // `check` creates the queue directories with the owners postfix wants (set-permissions would
    // also touch the system's postfix files, which the suite leaves alone).
    await run('postfix', ['-c', this.confDir, 'check']);
    chownSync(join(d, 'data'), pf.uid, pf.gid);
    const daemon = spawnDaemon('postfix', 'postfix', ['-c', this.confDir, 'start-fg'], { logFile: join(d, 'postfix.out') });
    this.#daemon = daemon;
    const pidFile = join(d, 'queue', 'pid', 'master.pid');
    await waitFor(async () => {
      if (daemon.dead) throw new Error(`postfix exited: ${tail(join(d, 'postfix.out'))}\n${tail(this.maillog)}`);
      return (await greeting('127.0.0.1', this.smtpPort)).startsWith('220') && existsSync(pidFile);
    }, 20_000, 'postfix smtpd');
    const masterPid = Number(readFileSync(pidFile, 'utf8').trim());
    this.#untrack = trackGroup(masterPid);
  }

  async stop(): Promise<void> {
    if (!this.#daemon) return;
    await run('postfix', ['-c', this.confDir, 'stop'], { timeoutMs: 20_000 }).catch(() => undefined);
    await this.#daemon.stop(5_000);
    this.#daemon = null;
    const pidFile = join(this.dir, 'queue', 'pid', 'master.pid');
    if (existsSync(pidFile)) {
      try {
        process.kill(-Number(readFileSync(pidFile, 'utf8').trim()), 'SIGKILL');
      } catch {
        // postfix stop already took the group down.
      }
    }
    this.#untrack?.();
  }

  /** The queue as `postqueue -j` sees it (incoming, active, deferred, hold). */
  async queue(): Promise<QueuedMessage[]> {
    const out = await run('postqueue', ['-c', this.confDir, '-j']);
    return out.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as QueuedMessage);
  }

  /** Asks the queue manager to retry deferred mail now. */
  async flush(): Promise<void> {
    await run('postqueue', ['-c', this.confDir, '-f']);
  }

  log(): string {
    return existsSync(this.maillog) ? readFileSync(this.maillog, 'utf8') : '';
  }

  logTail(lines = 40): string {
    return tail(this.maillog, lines);
  }
}
