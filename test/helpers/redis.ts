/**
 * A real redis-server for tests: spawned on a free port with no persistence, killed after.
 * Tests isolate by key prefix (`uniquePrefix()`), never FLUSHDB, so one server can serve a file.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll } from 'vitest';
import { freePort, waitFor } from './ports.js';

export interface RedisServer {
  port: number;
  url: string;
  /** Stops the server (SIGKILL when `hard`), leaving the port to be reused by `start()`. */
  stop(hard?: boolean): Promise<void>;
  /** (Re)starts on the same port. */
  start(): Promise<void>;
  close(): Promise<void>;
}

export async function startRedis(): Promise<RedisServer> {
  const port = await freePort();
  let child: ChildProcess | null = null;

  async function start(): Promise<void> {
    child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
      '--protected-mode', 'no', '--loglevel', 'warning'], { stdio: 'ignore' });
    const c = child;
    c.on('error', () => undefined);
    await waitFor(async () => {
      if (c.exitCode !== null) throw new Error(`redis-server exited with ${c.exitCode}`);
      return redisAnswers(port);
    }, 10_000, `redis-server on port ${port}`);
  }

  async function stop(hard = false): Promise<void> {
    const c = child;
    child = null;
    if (!c || c.exitCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill(hard ? 'SIGKILL' : 'SIGTERM');
    await exited;
  }

  await start();
  return { port, url: `redis://127.0.0.1:${port}`, start, stop, close: () => stop(true) };
}

/** A key prefix no other test uses. */
/** One PING on a fresh connection, no retries: true once a redis-server on `port` answers. */
export async function redisAnswers(port: number): Promise<boolean> {
  const probe = new Redis({ port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  probe.on('error', () => undefined);
  try {
    await probe.connect();
    return (await probe.ping()) === 'PONG';
  } finally {
    probe.disconnect();
  }
}

export function uniquePrefix(tag = 't'): string {
  return `test:${tag}:${randomBytes(4).toString('hex')}:`;
}

/**
 * A redis-server for the enclosing suite plus one plain client on it, started before its tests
 * and stopped after them. The getters are read inside tests (the values exist only from beforeAll on).
 */
export function useRedisServer(): { readonly server: RedisServer; readonly client: Redis } {
  let server: RedisServer | undefined;
  let client: Redis | undefined;
  beforeAll(async () => {
    server = await startRedis();
    client = new Redis(server.port, '127.0.0.1');
  });
  afterAll(async () => {
    client?.disconnect();
    await server?.close();
  });
  return {
    get server() { return server as RedisServer; },
    get client() { return client as Redis; },
  };
}
