/**
 * The shared secret is required: without it any local process could ask where mailboxes live and
 * which users exist. The example config (what `npm start` serves) sets one, and its nginx line.
 */
import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, parseConfig } from '../../src/config/index.js';
import { ConfigError } from '../../src/core/errors.js';
import { createAuthServer, createMemoryThrottleStore } from '../../src/auth/index.js';
import { startStoreroute } from '../../src/main.js';
import { freePort } from '../helpers/ports.js';
import { testLogger, testRegistry } from '../helpers/logger.js';
import { openDirectory, startAuthRig } from './setup.js';
import { exchange } from './wire.js';

const EXAMPLE = new URL('../../config/storeroute.example.yaml', import.meta.url).pathname;

describe('auth without a shared secret', () => {
  it('refuses to start, naming auth.sharedSecret, and binds nothing', async () => {
    const { directory, cleanup } = await openDirectory();
    try {
      const port = await freePort();
      const config = parseConfig({ auth: { listen: { port } } }).auth;
      let err: unknown;
      try {
        createAuthServer({ config, directory, throttle: createMemoryThrottleStore(), obs: { logger: testLogger(), metrics: testRegistry() } });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).problems.map((p) => p.path)).toEqual(['auth.sharedSecret']);
      expect((err as Error).message).toMatch(/auth\.sharedSecret: required while auth is enabled.*auth\.allowWithoutSecret/);
      await expect(exchange(port, { user: 'alice' })).rejects.toThrow(/ECONNREFUSED/);
    } finally {
      await cleanup();
    }
  });

  it('serves with the explicit opt-out, and warns about it at start', async () => {
    const rig = await startAuthRig({ allowWithoutSecret: true });
    try {
      expect((await exchange(rig.port, { user: 'alice' })).auth[0]).toBe('Auth-Status: OK');
      expect(rig.logs.filter((l) => l.msg === 'auth_without_shared_secret')).toHaveLength(1);
    } finally {
      await rig.close();
    }
  });

  it('is not required when auth is disabled', () => {
    const config = parseConfig({ auth: { enabled: false } });
    expect(config.auth.sharedSecret).toBeUndefined();
  });

  it('storeroute serve refuses the example config with its secret removed (and starts with it)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sr-auth-secret-'));
    const config = loadConfig(EXAMPLE);
    config.directory.embedded.file = join(dir, 'directory.json');
    config.journal.dir = join(dir, 'journal');
    config.lmtp.listen = { host: '127.0.0.1', port: 0 };
    config.auth.listen.port = 0;
    config.admin.listen.port = 0;
    const secret = config.auth.sharedSecret;
    delete config.auth.sharedSecret;
    await expect(startStoreroute(config, testLogger())).rejects.toThrow(/auth\.sharedSecret: required/);
    config.auth.sharedSecret = secret;
    const running = await startStoreroute(config, testLogger());
    try {
      const extra = { [secret!.header]: secret!.value };
      expect((await exchange(running.auth!.port, { user: 'nobody-at-all' })).status).toBe(403);
      expect((await exchange(running.auth!.port, { user: 'nobody-at-all', extra })).auth[0]).toBe('Auth-Status: Invalid login or password');
    } finally {
      await running.stop();
    }
  });
});

describe('the example config', () => {
  it('sets a shared secret, and the nginx line in its comment carries the same header and value', () => {
    const config = loadConfig(EXAMPLE);
    expect(config.auth.enabled).toBe(true);
    expect(config.auth.allowWithoutSecret).toBe(false);
    expect(config.auth.sharedSecret).toEqual({ header: 'X-Storeroute-Secret', value: 'change-me-before-production' });
    const text = readFileSync(EXAMPLE, 'utf8');
    expect(text).toContain(`auth_http_header ${config.auth.sharedSecret!.header} ${config.auth.sharedSecret!.value};`);
    expect(text).toMatch(/CHANGE THIS VALUE BEFORE PRODUCTION/);
  });
});
