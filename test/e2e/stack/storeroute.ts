/**
 * storeroute as an operator runs it: the built package (`dist/`, from `npm run build`), started
 * with `storeroute serve --config <file>` as a child process, and driven with the same CLI
 * (`directory apply`, `store failover`, `replay` …). Ports are chosen once, so a restart after a
 * kill comes back where postfix and nginx expect it.
 */
import { existsSync, writeFileSync, mkdirSync } from 'node:fs';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawn } from 'node:child_process';
import { stringify } from 'yaml';
import { spawnDaemon, tail, type Daemon } from './proc.js';
import { freePort, waitFor } from '../../helpers/ports.js';
import { greeting } from './cyrus.js';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
/** The built CLI; STOREROUTE_E2E_CLI points the suite at another build (e.g. an installed package). */
export const CLI = process.env.STOREROUTE_E2E_CLI ?? join(REPO, 'dist', 'cli', 'index.js');

export interface StorerouteOptions {
  dir: string;
  redisUrl: string;
  domain: string;
  /** The Cyrus admin password, for replay's IMAP check. */
  cyrusAdminPassword: string;
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the built CLI, `storeroute <args> --config <configFile>`, to completion (killed after `timeoutMs`). */
export function runCli(configFile: string, args: string[], opts: { cwd?: string; timeoutMs?: number } = {}): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [CLI, ...args, '--config', configFile], { cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolvePromise({ code: code ?? -1, stdout, stderr });
    });
  });
}

export class Storeroute {
  readonly dir: string;
  readonly configFile: string;
  readonly logFile: string;
  readonly sharedSecret = { header: 'X-Storeroute-Secret', value: 'e2e-nginx-secret' };
  readonly adminToken = 'e2e-admin-token-0123456789';
  lmtpPort = 0;
  authPort = 0;
  adminPort = 0;
  readonly #opts: StorerouteOptions;
  #daemon: Daemon | null = null;

  constructor(opts: StorerouteOptions) {
    this.#opts = opts;
    this.dir = opts.dir;
    this.configFile = join(opts.dir, 'storeroute.yaml');
    this.logFile = join(opts.dir, 'storeroute.log');
  }

  async writeConfig(): Promise<void> {
    if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first (npm run test:e2e does)`);
    mkdirSync(this.dir, { recursive: true });
    this.lmtpPort ||= await freePort();
    this.authPort ||= await freePort();
    this.adminPort ||= await freePort();
    const config = {
      log: { level: 'info' },
      directory: this.directoryConfig,
      lmtp: {
        listen: { host: '127.0.0.1', port: this.lmtpPort },
        hostname: 'storeroute.e2e.test',
        localDomains: [this.#opts.domain],
        backend: { connectTimeoutMs: 2_000, greetingTimeoutMs: 5_000 },
        shutdownGraceMs: 2_000,
      },
      auth: {
        listen: { host: '127.0.0.1', port: this.authPort },
        sharedSecret: this.sharedSecret,
      },
      journal: { dir: join(this.dir, 'journal') },
      admin: { listen: { host: '127.0.0.1', port: this.adminPort }, token: this.adminToken, heartbeatMs: 1_000 },
      replay: { imap: { user: 'cyrus', password: this.#opts.cyrusAdminPassword } },
    };
    writeFileSync(this.configFile, stringify(config));
  }

  /** The directory section of the config (what another process of the site, an agent, points at). */
  get directoryConfig() {
    return { backend: 'redis', redis: { url: this.#opts.redisUrl, keyPrefix: 'e2e:' } } as const;
  }

  get authHttp(): string {
    return `127.0.0.1:${this.authPort}/auth`;
  }

  get running(): boolean {
    return this.#daemon !== null && !this.#daemon.dead;
  }

  async start(): Promise<void> {
    if (this.running) return;
    await this.writeConfig();
    const d = spawnDaemon('storeroute', process.execPath, [CLI, 'serve', '--config', this.configFile], { logFile: this.logFile, cwd: this.dir });
    this.#daemon = d;
    await waitFor(async () => {
      if (d.dead) throw new Error(`storeroute serve exited: ${tail(this.logFile)}`);
      const lmtp = await greeting('127.0.0.1', this.lmtpPort, 3_000);
      const ready = await fetch(`http://127.0.0.1:${this.adminPort}/readyz`);
      return lmtp.startsWith('220') && ready.status === 200;
    }, 30_000, 'storeroute serve (LMTP greeting and /readyz)');
  }

  /** `kill -9`: no drain, no goodbye. */
  async kill(): Promise<void> {
    const d = this.#daemon;
    this.#daemon = null;
    await d?.kill();
  }

  async stop(): Promise<void> {
    const d = this.#daemon;
    this.#daemon = null;
    await d?.stop(10_000);
  }

  /** Runs `storeroute <args> --config <file>` to completion. */
  cli(args: string[], timeoutMs = 120_000): Promise<CliResult> {
    return runCli(this.configFile, [...args, '--actor', 'e2e'], { cwd: this.dir, timeoutMs });
  }

  /** Like cli() but throws with the output on a non-zero exit. */
  async ok(args: string[], timeoutMs?: number): Promise<string> {
    const r = await this.cli(args, timeoutMs);
    if (r.code !== 0) throw new Error(`storeroute ${args.join(' ')} exited ${r.code}\n${r.stdout}${r.stderr}`);
    return r.stdout;
  }

  logTail(lines = 40): string {
    return tail(this.logFile, lines);
  }
}
