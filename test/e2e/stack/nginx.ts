/**
 * nginx with the mail module (Debian `libnginx-mod-mail`), IMAP and POP3 on free loopback ports,
 * asking `auth_http` where each login goes. Runs in the foreground as our child with its own
 * prefix, pid and logs in the suite's directory.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnDaemon, run, tail, type Daemon } from './proc.js';
import { freePort, waitFor } from '../../helpers/ports.js';
import { greeting } from './cyrus.js';

export interface NginxOptions {
  dir: string;
  /** e.g. `127.0.0.1:9000/auth` */
  authHttp: string;
  /** `auth_http_header` name and value (storeroute's shared secret). */
  authHeader?: { name: string; value: string };
}

export class Nginx {
  readonly dir: string;
  imapPort = 0;
  pop3Port = 0;
  readonly #opts: NginxOptions;
  #daemon: Daemon | null = null;

  constructor(opts: NginxOptions) {
    this.#opts = opts;
    this.dir = opts.dir;
  }

  get errorLog(): string {
    return join(this.dir, 'error.log');
  }

  async start(): Promise<void> {
    mkdirSync(this.dir, { recursive: true });
    this.imapPort = await freePort();
    this.pop3Port = await freePort();
    const conf = join(this.dir, 'nginx.conf');
    const header = this.#opts.authHeader ? `  auth_http_header ${this.#opts.authHeader.name} ${this.#opts.authHeader.value};` : '';
    writeFileSync(conf, [
      'load_module /usr/lib/nginx/modules/ngx_mail_module.so;',
      'worker_processes 1;',
      `pid ${join(this.dir, 'nginx.pid')};`,
      `error_log ${this.errorLog} info;`,
      'daemon off;',
      'events { worker_connections 512; }',
      'mail {',
      '  server_name mail.e2e.test;',
      `  auth_http ${this.#opts.authHttp};`,
      header,
      '  auth_http_timeout 30s;',
      '  proxy_pass_error_message on;',
      '  imap_auth plain login;',
      '  pop3_auth plain;',
      `  server { listen 127.0.0.1:${this.imapPort}; protocol imap; }`,
      `  server { listen 127.0.0.1:${this.pop3Port}; protocol pop3; }`,
      '}',
      '',
    ].join('\n'));
    const args = ['-p', this.dir, '-c', conf, '-e', this.errorLog];
    await run('nginx', [...args, '-t']);
    const daemon = spawnDaemon('nginx', 'nginx', args, { logFile: join(this.dir, 'nginx.out') });
    this.#daemon = daemon;
    await waitFor(async () => {
      if (daemon.dead) throw new Error(`nginx exited: ${tail(this.errorLog)}`);
      const [imap, pop3] = await Promise.all([greeting('127.0.0.1', this.imapPort), greeting('127.0.0.1', this.pop3Port)]);
      return imap.startsWith('* OK') && pop3.startsWith('+OK');
    }, 10_000, 'nginx mail listeners');
  }

  async stop(): Promise<void> {
    const d = this.#daemon;
    this.#daemon = null;
    await d?.stop(5_000);
  }

  logTail(lines = 30): string {
    return tail(this.errorLog, lines);
  }
}
