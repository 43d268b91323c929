/**
 * Issue 11, "telling the truth": /readyz answers from real state (the journal can take records,
 * the directory is reachable, holds a layout and hears invalidations), says why when it is not
 * ready, and the example's public shared secret is warned about at every start.
 */
import { describe, it, expect, afterAll, beforeAll } from 'vitest';
import { rmSync, writeFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import type { Config } from '../src/config/index.js';
import { startStoreroute, type Running } from '../src/main.js';
import { applyDirectory, RedisDirectory } from '../src/directory/index.js';
import { exampleConfigInTempDir } from './helpers/example-config.js';
import { testLogger, testRegistry } from './helpers/logger.js';
import { startRedis, uniquePrefix, type RedisServer } from './helpers/redis.js';
import { waitFor } from './helpers/ports.js';

async function readyz(running: Running): Promise<{ status: number; body: { ok: boolean; checks: Record<string, boolean>; problems?: Record<string, string> } }> {
  const r = await fetch(`${running.admin!.url}/readyz`);
  return { status: r.status, body: await r.json() as never };
}

/** A pino logger whose lines the test can read. */
function capturingLogger(): { logger: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({ write(chunk: Buffer, _enc, done) {
    for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
    done();
  } });
  return { logger: pino({ level: 'info' }, sink), lines };
}

describe('/readyz tells the truth about the journal', () => {
  it('turns false, naming the folder, when the journal folder can no longer take files', async () => {
    const config = exampleConfigInTempDir();
    const running = await startStoreroute(config, testLogger());
    try {
      expect((await readyz(running)).status).toBe(200);
      rmSync(config.journal.dir, { recursive: true, force: true });
      const r = await readyz(running);
      expect(r.status).toBe(503);
      expect(r.body.checks).toEqual({ directory: true, journal: false });
      expect(r.body.problems?.journal).toContain(`journal folder ${config.journal.dir} is not writable`);
    } finally {
      await running.stop();
    }
  });
});

describe('the example shared secret', () => {
  it('is warned about at every start, naming the key', async () => {
    for (let start = 0; start < 2; start++) {
      const config = exampleConfigInTempDir();
      const { logger, lines } = capturingLogger();
      const running = await startStoreroute(config, logger);
      await running.stop();
      const warnings = lines.filter((l) => l.msg === 'config_warning');
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatchObject({ level: 40, path: 'auth.sharedSecret.value' });
      expect(String(warnings[0]!.problem)).toContain('public value');
    }
  });

  it('is not warned about once the site sets its own', async () => {
    const config = exampleConfigInTempDir();
    config.auth.sharedSecret = { header: 'X-Storeroute-Secret', value: 'a-site-secret' };
    const { logger, lines } = capturingLogger();
    const running = await startStoreroute(config, logger);
    await running.stop();
    expect(lines.filter((l) => l.msg === 'config_warning')).toEqual([]);
  });
});

describe('/readyz tells the truth about a Redis directory', () => {
  let redis: RedisServer;
  beforeAll(async () => { redis = await startRedis(); });
  afterAll(async () => { await redis.close(); });

  function redisConfig(keyPrefix: string): Config {
    const config = exampleConfigInTempDir();
    config.directory.backend = 'redis';
    config.directory.redis.url = redis.url;
    config.directory.redis.keyPrefix = keyPrefix;
    return config;
  }

  async function applyExample(config: Config): Promise<void> {
    const writer = await RedisDirectory.open(config.directory.redis, { logger: testLogger(), metrics: testRegistry() });
    try {
      await applyDirectory(writer, new URL('../config/directory.example.yaml', import.meta.url).pathname, { actor: 'test' });
    } finally {
      await writer.close();
    }
  }

  it('is false while Redis holds no layout, true once one is applied, false while Redis is down', async () => {
    const config = redisConfig(uniquePrefix('ready'));
    const running = await startStoreroute(config, testLogger());
    try {
      // Every lookup would answer 451 (or, worse, unknown): not ready.
      const empty = await readyz(running);
      expect(empty.status).toBe(503);
      expect(empty.body.checks.directory).toBe(false);
      expect(empty.body.problems?.directory).toMatch(/layout/);

      await applyExample(config);
      await waitFor(async () => (await readyz(running)).status === 200, 5_000, 'ready after the layout is applied');

      await redis.stop(true);
      const down = await waitFor(async () => {
        const r = await readyz(running);
        return r.status === 503 ? r : null;
      }, 10_000, 'not ready while Redis is down');
      expect(down.body.checks.directory).toBe(false);
      // This redis-server keeps nothing on disk: it comes back empty, which is not ready either.
      await redis.start();
      await waitFor(async () => (await readyz(running)).body.problems?.directory?.match(/layout/), 10_000,
        'reachable again but empty');
      await applyExample(config);
      await waitFor(async () => (await readyz(running)).status === 200, 10_000, 'ready again once the layout is back');
    } finally {
      await running.stop();
    }
  }, 30_000);
});

describe('/readyz tells the truth about an embedded directory file', () => {
  it('is false, naming the file, once the file is emptied under a running serve', async () => {
    const config = exampleConfigInTempDir();
    const running = await startStoreroute(config, testLogger());
    try {
      expect((await readyz(running)).status).toBe(200);
      writeFileSync(config.directory.embedded.file, '');
      const r = await waitFor(async () => {
        const x = await readyz(running);
        return x.status === 503 ? x : null;
      }, 5_000, 'not ready with an empty directory file');
      expect(r.body.problems?.directory).toContain(config.directory.embedded.file);
    } finally {
      await running.stop();
    }
  });
});
