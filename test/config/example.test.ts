import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { loadConfig, parseConfig } from '../../src/config/index.js';

const EXAMPLE = new URL('../../config/storeroute.example.yaml', import.meta.url).pathname;

/** Every leaf path of an object: ["lmtp.backend.connectTimeoutMs", …]. Arrays and null are leaves. */
function leaves(value: unknown, prefix = ''): string[] {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return [prefix];
  return Object.entries(value).flatMap(([k, v]) => leaves(v, prefix ? `${prefix}.${k}` : k));
}

describe('config/storeroute.example.yaml', () => {
  it('is valid', () => {
    expect(() => loadConfig(EXAMPLE)).not.toThrow();
  });

  it('shows every key that has a default, so operators see the whole surface', () => {
    const text = readFileSync(EXAMPLE, 'utf8');
    const raw = parse(text) as Record<string, unknown>;
    const shown = new Set(leaves(raw));
    const missing = leaves(parseConfig({})).filter((path) => !shown.has(path));
    expect(missing).toEqual([]);
  });
});
