/**
 * Loading the config file: YAML (or JSON, which is YAML), validated by the one schema. Every
 * problem is reported at once with its path; callers refuse to start on a ConfigError.
 */
import { readFileSync } from 'node:fs';
import { resolve, dirname, isAbsolute } from 'node:path';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { configSchema, SECRET_PATHS, type Config, type ConfigInput } from './schema.js';
import { ConfigError, type FileProblem } from '../core/errors.js';

export type { Config, ConfigInput } from './schema.js';

function describeGot(input: unknown, path: PropertyKey[]): string {
  let v: unknown = input;
  for (const k of path) {
    if (v === null || typeof v !== 'object') return '';
    v = (v as Record<PropertyKey, unknown>)[k];
  }
  if (v === undefined) return '';
  return `, got ${JSON.stringify(v)}`;
}

/** zod issues → "path: message" problems, with the offending value where there is one. */
export function zodProblems(error: z.ZodError, input: unknown): FileProblem[] {
  const problems: FileProblem[] = [];
  for (const issue of error.issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) {
        problems.push({ path: [...issue.path, key].join('.'), message: 'unknown key' });
      }
      continue;
    }
    const path = issue.path.join('.') || '(top level)';
    problems.push({ path, message: issue.message + describeGot(input, issue.path) });
  }
  return problems;
}

/** Validates an already-parsed object. `source` names it in errors. */
export function parseConfig(input: unknown, source = '(config)'): Config {
  const result = configSchema.safeParse(input ?? {});
  if (!result.success) throw new ConfigError(source, zodProblems(result.error, input));
  return result.data;
}

/**
 * Reads and validates a config file. Relative paths inside it (journal.dir, directory files) are
 * resolved against the file's own folder, so `storeroute serve --config /etc/x.yaml` works from
 * any working directory.
 */
export function loadConfig(file: string, overrides?: (input: ConfigInput) => void): Config {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, [{ path: '(file)', message: `cannot read: ${(err as Error).message}` }]);
  }
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(file, doc.errors.map((e) => ({ path: '(yaml)', message: e.message.split('\n')[0] ?? e.message })));
  }
  const input = (doc.toJS() ?? {}) as ConfigInput;
  overrides?.(input);
  const config = parseConfig(input, file);
  return resolvePaths(config, dirname(resolve(file)));
}

function resolvePaths(config: Config, base: string): Config {
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(base, p));
  config.directory.embedded.file = abs(config.directory.embedded.file);
  if (config.directory.embedded.seed) config.directory.embedded.seed = abs(config.directory.embedded.seed);
  config.journal.dir = abs(config.journal.dir);
  if (config.lmtp.socket) config.lmtp.socket = abs(config.lmtp.socket);
  for (const slot of config.agent.slots) slot.imapdConf = abs(slot.imapdConf);
  return config;
}

/** A deep copy with every secret replaced, for `config print` and start-up logs. */
export function redactConfig(config: Config): unknown {
  const copy = structuredClone(config) as unknown as Record<string, unknown>;
  for (const path of SECRET_PATHS) {
    const keys = path.split('.');
    let node: Record<string, unknown> | undefined = copy;
    for (const k of keys.slice(0, -1)) {
      const next: unknown = node?.[k];
      node = next && typeof next === 'object' ? (next as Record<string, unknown>) : undefined;
    }
    const last = keys.at(-1)!;
    if (node && node[last] !== undefined) {
      node[last] = path === 'directory.redis.url' ? redactUrl(String(node[last])) : '[redacted]';
    }
  }
  return copy;
}

function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = 'redacted';
    return u.toString();
  } catch {
    return '[redacted]';
  }
}
