/**
 * A whole LMTP path for tests: the embedded directory (real, file-backed), four LMTP backends, and
 * the proxy on port 0. Stores: s1 = [a1 (master), a2], s2 = [b1, b2], s3 = [c1, c2]; a1, a2, b1, c1
 * have live backends; b2, c2 point at a closed port.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig, type ConfigInput } from '../../src/config/index.js';
import { createDirectory, type Directory } from '../../src/directory/index.js';
import { createLmtpServer, type LmtpServer } from '../../src/lmtp/index.js';
import type { JournalSink } from '../../src/journal/types.js';
import { startLmtpBackend, type LmtpBackend } from '../helpers/lmtp-backend.js';
import { freePort } from '../helpers/ports.js';
import { testLogger, testRegistry } from '../helpers/logger.js';
import type { Registry } from 'prom-client';
import type { Logger } from 'pino';

export interface Fixture {
  port: number;
  socket?: string;
  tmp: string;
  directory: Directory;
  server: LmtpServer;
  be: { a1: LmtpBackend; a2: LmtpBackend; b1: LmtpBackend; c1: LmtpBackend };
  registry: Registry;
  close(): Promise<void>;
}

export async function startFixture(opts: { lmtp?: ConfigInput['lmtp']; journal?: JournalSink;
  journalConfig?: ConfigInput['journal']; logger?: Logger } = {}): Promise<Fixture> {
  const tmp = await mkdtemp(join(tmpdir(), 'sr-lmtp-'));
  const obs = { logger: opts.logger ?? testLogger(), metrics: testRegistry() };
  const config = parseConfig({
    directory: { backend: 'embedded', embedded: { file: join(tmp, 'directory.json') } },
    lmtp: { listen: { host: '127.0.0.1', port: 0 }, hostname: 'proxy.test', ...opts.lmtp },
    journal: opts.journalConfig ?? {},
  });
  const directory = await createDirectory(config.directory, obs);
  const [a1, a2, b1, c1] = await Promise.all([startLmtpBackend(), startLmtpBackend(), startLmtpBackend(), startLmtpBackend()]);
  const dead = await freePort();
  const slot = (name: string, machine: string, lmtp: number) =>
    directory.createSlot({ name, machine, ip: '127.0.0.1', lmtp }, 'test');
  await slot('a1', 'm1', a1!.port);
  await slot('a2', 'm2', a2!.port);
  await slot('b1', 'm1', b1!.port);
  await slot('b2', 'm2', dead);
  await slot('c1', 'm1', c1!.port);
  await slot('c2', 'm2', dead);
  await directory.createStore({ name: 's1', slots: ['a1', 'a2'], preferredMaster: 'a1' }, 'test');
  await directory.createStore({ name: 's2', slots: ['b1', 'b2'], preferredMaster: 'b1' }, 'test');
  await directory.createStore({ name: 's3', slots: ['c1', 'c2'], preferredMaster: 'c1' }, 'test');
  for (const [name, store] of [['alice', 's1'], ['bob', 's2'], ['carol', 's3'], ['dave@example.com', 's1']]) {
    await directory.createUser({ name: name!, store: store! }, 'test');
  }
  const server = createLmtpServer({ config: config.lmtp, journalConfig: config.journal, directory, journal: opts.journal, obs });
  const bound = await server.listen();
  return {
    port: bound.port ?? 0,
    socket: bound.socket,
    tmp,
    directory,
    server,
    be: { a1: a1!, a2: a2!, b1: b1!, c1: c1! },
    registry: obs.metrics,
    async close() {
      await server.close(0);
      await Promise.all([a1, a2, b1, c1].map((b) => b!.close()));
      await directory.close();
      await rm(tmp, { recursive: true, force: true });
    },
  };
}

/**
 * Adds store `store` whose master (`<store>m`) listens on `port` (e.g. a raw backend) and whose
 * replica points at the same port, plus `users` on it.
 */
export async function addStoreAt(fx: Fixture, port: number, store: string, users: string[]): Promise<void> {
  await fx.directory.createSlot({ name: `${store}m`, machine: `${store}-m1`, ip: '127.0.0.1', lmtp: port }, 'test');
  await fx.directory.createSlot({ name: `${store}r`, machine: `${store}-m2`, ip: '127.0.0.1', lmtp: port }, 'test');
  await fx.directory.createStore({ name: store, slots: [`${store}m`, `${store}r`], preferredMaster: `${store}m` }, 'test');
  for (const name of users) await fx.directory.createUser({ name, store }, 'test');
}
