import { describe, it, expect } from 'vitest';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cli, embeddedSite, fixture, redisSite, root } from './harness.js';

describe('storeroute config (in-process)', () => {
  it('a bad config file lists every problem with its path and exits 2, for any command', async () => {
    for (const args of [['config', 'check', fixture('bad-config.yaml')], ['--config', fixture('bad-config.yaml'), 'store', 'list']]) {
      const r = await cli(args);
      expect(r.code).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr).toContain('bad-config.yaml: 3 problem(s)');
      expect(r.stderr).toMatch(/lmtp\.maxClients: .*"many"/);
      expect(r.stderr).toMatch(/directory\.backend: .*"postgres"/);
      expect(r.stderr).toContain('directory.colour: unknown key');
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
  });

  it('config check --json reports problems on stdout and still exits 2', async () => {
    const bad = await cli(['config', 'check', '--json', fixture('bad-config.yaml')]);
    expect(bad.code).toBe(2);
    const doc = JSON.parse(bad.stdout);
    expect(doc.ok).toBe(false);
    expect(doc.problems.map((p: { path: string }) => p.path).sort()).toEqual(['directory.backend', 'directory.colour', 'lmtp.maxClients']);

    const site = embeddedSite();
    // Checked as `serve` would: the embedded directory file does not exist yet (everyone would be
    // unknown) and auth_http has no shared secret. Both reported, exit 2.
    const unservable = await cli(['config', 'check', '--json', site.config]);
    expect(unservable.code).toBe(2);
    expect(JSON.parse(unservable.stdout).problems.map((p: { path: string }) => p.path)).toEqual(['directory.embedded.file', 'auth.sharedSecret']);
    writeFileSync(site.config, 'log: { level: silent }\ndirectory:\n  backend: embedded\n  embedded: { file: directory.json }\n'
      + 'auth: { sharedSecret: { value: s3cret } }\n');
    expect((await cli(['--config', site.config, 'directory', 'apply', fixture('two-stores.yaml')])).code).toBe(0);
    expect(await cli(['config', 'check', site.config])).toMatchObject({ code: 0, stdout: `${site.config}: ok\n` });
    expect(JSON.parse((await cli(['config', 'check', '--json', site.config])).stdout)).toEqual({ file: site.config, ok: true, problems: [], warnings: [] });
    const missing = await cli(['config', 'check', join(site.dir, 'nope.yaml')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('cannot read');
  });

  it('config check warns (still exit 0) when a redis directory\'s journal has no admin.token to replay it, or the token is the example\'s', async () => {
    const site = redisSite('redis://127.0.0.1:6379', 'cfg:');
    const base = readFileSync(site.config, 'utf8') + 'auth: { sharedSecret: { value: s3cret } }\n';
    writeFileSync(site.config, base);
    const missing = await cli(['config', 'check', site.config]);
    expect(missing).toMatchObject({ code: 0, stdout: `${site.config}: ok\n` });
    expect(missing.stderr).toMatch(new RegExp(`^warning: ${site.config}: admin\\.token: not set: with the redis directory \`storeroute replay\``));
    const json = JSON.parse((await cli(['config', 'check', '--json', site.config])).stdout) as { ok: boolean; warnings: Array<{ path: string }> };
    expect(json.ok).toBe(true);
    expect(json.warnings.map((w) => w.path)).toEqual(['admin.token']);

    // The value shown (commented out) in the example config, uncommented as an operator would.
    const example = /^ {2}# token: (\S+)/m.exec(readFileSync(`${root}/config/storeroute.example.yaml`, 'utf8'))![1]!;
    writeFileSync(site.config, `${base}admin: { token: ${example} }\n`);
    const copied = await cli(['config', 'check', site.config]);
    expect(copied.code).toBe(0);
    expect(copied.stderr).toContain('admin.token: is the value from the public example');

    writeFileSync(site.config, `${base}admin: { token: 9f86d081884c7d659a2feaa0c55ad015 }\n`);
    expect(await cli(['config', 'check', site.config])).toEqual({ code: 0, stdout: `${site.config}: ok\n`, stderr: '' });
  });

  it('config print shows the effective config with secrets redacted; --redis switches the backend', async () => {
    const site = embeddedSite();
    writeFileSync(site.config, 'admin: { token: hunter2 }\ndirectory: { redis: { password: sekrit } }\n');
    const r = await cli(['--config', site.config, '--redis', 'redis://:pw1234@10.0.0.1:6380', 'config', 'print', '--json']);
    expect(r.code).toBe(0);
    const c = JSON.parse(r.stdout);
    expect(c.directory.backend).toBe('redis');
    expect(c.directory.redis.url).toBe('redis://:redacted@10.0.0.1:6380');
    expect(c.admin.token).toBe('[redacted]');
    expect(c.lmtp.maxClients).toBe(500);
    for (const secret of ['hunter2', 'sekrit', 'pw1234']) expect(r.stdout).not.toContain(secret);

    const yaml = await cli(['--config', site.config, 'config', 'print']);
    expect(yaml.stdout).toMatch(/^ {2}backend: embedded$/m);
    expect(yaml.stdout).not.toContain('hunter2');
  });

  it('without --config or $STOREROUTE_CONFIG the built-in defaults apply', async () => {
    const r = await cli(['config', 'print', '--json'], { env: {} });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).directory.backend).toBe('embedded');
  });

  it('--help exits 0 and lists the command groups', async () => {
    const r = await cli(['--help']);
    expect(r.code).toBe(0);
    for (const group of ['directory', 'store', 'slot', 'user', 'status', 'history', 'config']) expect(r.stdout).toContain(group);
  });

  it('a read command on an embedded directory that does not exist refuses (exit 2) and creates nothing', async () => {
    const site = embeddedSite();
    for (const args of [['status'], ['store', 'list', '--json'], ['store', 'failover', 'store1']]) {
      const r = await cli(['--config', site.config, ...args]);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toBe(`error: no directory file at ${site.file} (embedded backend): check --config / $STOREROUTE_CONFIG, `
        + 'or create it with `storeroute directory apply FILE`\n');
    }
    expect(existsSync(site.file)).toBe(false);
    expect((await cli(['--config', site.config, 'directory', 'apply', fixture('two-stores.yaml')])).code).toBe(0);
    expect(existsSync(site.file)).toBe(true);
  });

  it('--version prints the package version', async () => {
    const r = await cli(['--version']);
    expect(r).toMatchObject({ code: 0, stdout: '0.1.0\n' });
  });
});
