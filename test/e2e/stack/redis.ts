/**
 * The directory's redis-server for the suite. Unlike test/helpers/redis.ts (no persistence), this
 * one keeps an append-only file synced on every write: scenario 7 restarts Redis, and a real
 * directory survives a restart. An empty Redis after a restart is a different failure (data loss).
 */
import { join } from 'node:path';
import { mkdirSync } from 'node:fs';
import { spawnDaemon, tail, type Daemon } from './proc.js';
import { freePort, waitFor } from '../../helpers/ports.js';
import { redisAnswers } from '../../helpers/redis.js';

export class RedisDaemon {
  port = 0;
  readonly dir: string;
  #daemon: Daemon | null = null;

  constructor(dir: string) {
    this.dir = dir;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    if (this.port === 0) this.port = await freePort();
    mkdirSync(this.dir, { recursive: true });
    const logFile = join(this.dir, 'redis.out');
    const d = spawnDaemon('redis', 'redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.dir,
      '--save', '', '--appendonly', 'yes', '--appendfsync', 'always', '--protected-mode', 'no', '--loglevel', 'warning'], { logFile });
    this.#daemon = d;
    await waitFor(async () => {
      if (d.dead) throw new Error(`redis-server exited: ${tail(logFile)}`);
      return redisAnswers(this.port);
    }, 10_000, `redis-server on port ${this.port}`);
  }

  /** SIGTERM (hard: SIGKILL); the append-only file keeps the data for the next start. */
  async stop(hard = false): Promise<void> {
    const d = this.#daemon;
    this.#daemon = null;
    if (!d) return;
    if (hard) await d.kill();
    else await d.stop(10_000);
  }
}
