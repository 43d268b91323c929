import { describe, it, expect } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig, loadConfig, redactConfig } from '../../src/config/index.js';
import { ConfigError } from '../../src/core/errors.js';

describe('config', () => {
  it('an empty file gives every default', () => {
    const c = parseConfig({});
    expect(c.directory.backend).toBe('embedded');
    expect(c.journal.retentionMs).toBe(300_000);
    expect(c.lmtp.backend.connectTimeoutMs).toBe(5_000);
  });

  it('reports every problem at once, with its path and the value', () => {
    let err: unknown;
    try {
      parseConfig({ lmtp: { backend: { connectTimeoutMs: '5s' }, bogus: 1 }, journal: { durability: 'sometimes' }, nope: {} }, 'x.yaml');
    } catch (e) { err = e; }
    expect(err).toBeInstanceOf(ConfigError);
    const problems = (err as ConfigError).problems.map((p) => p.path).sort();
    expect(problems).toEqual(['journal.durability', 'lmtp.backend.connectTimeoutMs', 'lmtp.bogus', 'nope']);
    expect((err as ConfigError).message).toContain('lmtp.backend.connectTimeoutMs');
    expect((err as ConfigError).message).toContain('"5s"');
  });

  it('refuses broken YAML and names the file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sr-cfg-'));
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, 'lmtp:\n  listen: [unclosed\n');
    expect(() => loadConfig(file)).toThrow(/bad\.yaml/);
    expect(() => loadConfig(join(dir, 'missing.yaml'))).toThrow(/cannot read/);
  });

  it('resolves relative paths against the config file and redacts secrets', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sr-cfg-'));
    const file = join(dir, 'c.yaml');
    writeFileSync(file, 'journal: { dir: j }\nadmin: { token: hunter2 }\ndirectory: { redis: { url: "redis://:pw@h:1" } }\n');
    const c = loadConfig(file);
    expect(c.journal.dir).toBe(join(dir, 'j'));
    const shown = JSON.stringify(redactConfig(c));
    expect(shown).not.toContain('hunter2');
    expect(shown).not.toContain(':pw@');
  });
});
