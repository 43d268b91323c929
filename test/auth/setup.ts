/**
 * A real embedded directory with two slots of one store, a real auth server on port 0, and a log
 * capture (to check what is and is not logged). Shared by the auth tests.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { parseConfig, type Config, type ConfigInput } from '../../src/config/index.js';
import { createDirectory } from '../../src/directory/index.js';
import type { Directory } from '../../src/directory/types.js';
import { createAuthServer, createMemoryThrottleStore, type SocketLayer, type ThrottleStore } from '../../src/auth/index.js';
import type { Registry } from 'prom-client';
import { testRegistry } from '../helpers/logger.js';

export const SLOT_A = { name: 'slot-a', machine: 'm1', ip: '127.0.0.11', imap: 10143, pop3: 10110 } as const;
export const SLOT_B = { name: 'slot-b', machine: 'm2', ip: '127.0.0.12', imap: 20143, pop3: 20110 } as const;

export interface AuthRig {
  port: number;
  directory: Directory;
  config: Config['auth'];
  logs: Record<string, unknown>[];
  metrics: Registry;
  rawLogs: () => string;
  close(): Promise<void>;
}

export async function seedDirectory(directory: Directory, slots: { a: typeof SLOT_A; b: typeof SLOT_B } = { a: SLOT_A, b: SLOT_B }): Promise<void> {
  await directory.createSlot({ ...slots.a }, 'test');
  await directory.createSlot({ ...slots.b }, 'test');
  await directory.createStore({ name: 'store1', slots: [slots.a.name, slots.b.name], preferredMaster: slots.a.name }, 'test');
  await directory.createUser({ name: 'alice', store: 'store1' }, 'test');
  await directory.createUser({ name: 'bob@example.com', store: 'store1' }, 'test');
}

export async function openDirectory(): Promise<{ directory: Directory; cleanup: () => Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'storeroute-auth-'));
  const config = parseConfig({ directory: { backend: 'embedded', embedded: { file: join(dir, 'directory.json') } } });
  const directory = await createDirectory(config.directory, { logger: pino({ level: 'silent' }), metrics: testRegistry() });
  return { directory, cleanup: async () => { await directory.close(); rmSync(dir, { recursive: true, force: true }); } };
}

export async function startAuthRig(auth: ConfigInput['auth'] = {}, options: {
  throttle?: ThrottleStore; directory?: Directory; seed?: boolean; socketLayer?: SocketLayer;
} = {}): Promise<AuthRig> {
  const opened = options.directory ? null : await openDirectory();
  const directory = options.directory ?? opened!.directory;
  if (options.seed !== false && opened) await seedDirectory(directory);
  // Requests in these tests are nginx's without an auth_http_header unless a test sets a secret,
  // so the rig takes the explicit opt-out then (the refusal without it is tested in secret.test.ts).
  const optOut = auth.sharedSecret || auth.allowWithoutSecret !== undefined ? {} : { allowWithoutSecret: true };
  const layer = options.socketLayer ? { socketLayer: options.socketLayer } : {};
  const config = parseConfig({ auth: { listen: { port: 0 }, ...optOut, ...layer, ...auth } }).auth;
  const lines: string[] = [];
  const sink = new Writable({ write(chunk, _enc, cb) { lines.push(String(chunk)); cb(); } });
  const logger = pino({ level: 'debug' }, sink);
  const throttle = options.throttle ?? createMemoryThrottleStore();
  const metrics = testRegistry();
  const server = createAuthServer({ config, directory, throttle, obs: { logger, metrics } });
  const { port } = await server.listen();
  return {
    port,
    directory,
    config,
    metrics,
    get logs() { return lines.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>); },
    rawLogs: () => lines.join(''),
    async close() {
      await server.close();
      if (!options.throttle) await throttle.close();
      await opened?.cleanup();
    },
  };
}
