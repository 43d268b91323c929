/**
 * A real nginx for tests (Debian `nginx` + `libnginx-mod-mail`), started in the foreground on a
 * private prefix directory with its own pid and error log, killed after. Missing binary or mail
 * module is a clear error, never a silent skip: CI installs both (scripts/install-deps.sh).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from './ports.js';

export const NGINX_MAIL_MODULE = '/usr/lib/nginx/modules/ngx_mail_module.so';

export interface NginxOptions {
  /** Body of a `mail { … }` block (loads the mail module). */
  mail?: string;
  /** Body of an `http { … }` block (temp paths and logs are set into the prefix directory). */
  http?: string;
  /** host:port pairs that must accept connections before start resolves. */
  readyPorts: { host: string; port: number }[];
  workerProcesses?: number;
}

export interface NginxServer {
  dir: string;
  /** The master process (workers are its children). */
  pid: number;
  errorLog(): string;
  stop(): Promise<void>;
}

/** Throws an explanatory error when nginx or its mail module is not installed. */
export function requireNginx(mail: boolean): void {
  const v = spawnSync('nginx', ['-v'], { encoding: 'utf8' });
  if (v.error || v.status !== 0) {
    throw new Error('nginx is not installed (needed by this test): apt-get install nginx libnginx-mod-mail');
  }
  if (mail && !existsSync(NGINX_MAIL_MODULE)) {
    throw new Error(`nginx mail module missing at ${NGINX_MAIL_MODULE}: apt-get install libnginx-mod-mail`);
  }
}

function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, host);
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

export async function startNginx(options: NginxOptions): Promise<NginxServer> {
  requireNginx(Boolean(options.mail));
  const dir = mkdtempSync(join(tmpdir(), 'storeroute-nginx-'));
  mkdirSync(join(dir, 'tmp'));
  const isRoot = process.getuid?.() === 0;
  const conf = [
    options.mail ? `load_module ${NGINX_MAIL_MODULE};` : '',
    isRoot ? 'user root;' : '',
    `worker_processes ${options.workerProcesses ?? 1};`,
    `pid ${dir}/nginx.pid;`,
    `error_log ${dir}/error.log info;`,
    'events { worker_connections 4096; }',
    options.mail ? `mail {\n${options.mail}\n}` : '',
    options.http ? `http {
      access_log off;
      client_body_temp_path ${dir}/tmp/body; proxy_temp_path ${dir}/tmp/proxy; fastcgi_temp_path ${dir}/tmp/fastcgi;
      uwsgi_temp_path ${dir}/tmp/uwsgi; scgi_temp_path ${dir}/tmp/scgi;
      ${options.http}
    }` : '',
  ].join('\n');
  writeFileSync(join(dir, 'nginx.conf'), conf);
  const child: ChildProcess = spawn('nginx', ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log'), '-g', 'daemon off;'],
    { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (c) => { stderr += String(c); });
  child.on('error', () => undefined);
  const errorLog = () => { try { return readFileSync(join(dir, 'error.log'), 'utf8'); } catch { return ''; } };
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM'); // nginx: fast shutdown of master and workers
      await Promise.race([exited, new Promise((r) => setTimeout(r, 3_000))]);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(async () => {
      if (child.exitCode !== null) throw new Error(`nginx exited with ${child.exitCode}: ${stderr.trim()} ${errorLog().trim()}`);
      for (const p of options.readyPorts) if (!(await canConnect(p.host, p.port))) return false;
      return true;
    }, 10_000, 'nginx to listen');
  } catch (err) {
    await stop();
    throw err;
  }
  return { dir, pid: child.pid!, errorLog, stop };
}
