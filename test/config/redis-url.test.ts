import { describe, it, expect } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cli, embeddedSite } from '../cli/harness.js';

/**
 * Issue 11.6: a directory.redis.url ioredis cannot use must be refused when the config is loaded
 * (exit 2 naming the key), not at the first connect (exit 70 with a stack trace, or a process that
 * loops on connect errors against an HTTP server).
 */
describe('directory.redis.url', () => {
  function siteWith(url: string): string {
    const site = embeddedSite();
    const config = join(site.dir, 'redis.yaml');
    writeFileSync(config, `log: { level: silent }\ndirectory:\n  backend: redis\n  redis: { url: ${JSON.stringify(url)} }\n`);
    return config;
  }

  it.each([
    ['not a url at all', /expected redis:\/\/\[:password@\]host/],
    ['http://x', /expected a redis:\/\/ or rediss:\/\/ URL, not http:\/\//],
    ['redis://h:6379/zero', /the database must be a number/],
  ])('refuses %j with exit 2 naming the key, for config check and serve alike', async (url, why) => {
    const config = siteWith(url);
    for (const args of [['config', 'check', config], ['--config', config, 'serve']]) {
      const r = await cli(args);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/directory\.redis\.url: /);
      expect(r.stderr).toMatch(why);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
  });

  it.each(['redis://127.0.0.1:6379', 'redis://:secret@redis.example:6380/2', 'rediss://redis.example', '/run/redis/redis.sock'])(
    'accepts %j', async (url) => {
      const r = await cli(['config', 'check', '--json', siteWith(url)]);
      const paths = (JSON.parse(r.stdout) as { problems: Array<{ path: string }> }).problems.map((p) => p.path);
      expect(paths).not.toContain('directory.redis.url');
    });
});
