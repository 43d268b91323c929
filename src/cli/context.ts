/**
 * What every CLI command needs: the effective config (same file as the server) and a directory
 * opened for the duration of one command. Kept small and stable: src/cli/replay.ts uses it too.
 */
import { existsSync } from 'node:fs';
import { hostname, userInfo } from 'node:os';
import { resolve } from 'node:path';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { loadConfig, parseConfig, type Config, type ConfigInput } from '../config/index.js';
import { createDirectory, type Directory } from '../directory/index.js';

/** The program's global options, as `command.optsWithGlobals()` returns them. */
export interface GlobalOptions {
  /** Config file; falls back to $STOREROUTE_CONFIG, then to the built-in defaults. */
  config?: string;
  /** One-off: directory.backend = redis with this URL. */
  redis?: string;
  /** Audit "who". */
  actor?: string;
}

function applyRedisOverride(input: ConfigInput, url: string | undefined): void {
  if (url === undefined) return;
  const directory = (input.directory ??= {});
  directory.backend = 'redis';
  directory.redis = { ...(directory.redis ?? {}), url };
}

/** The effective config. Throws ConfigError (listing every problem) on a bad file. */
export function loadCliConfig(opts: GlobalOptions, env: NodeJS.ProcessEnv = process.env): Config {
  const file = opts.config ?? (env.STOREROUTE_CONFIG || undefined);
  if (file !== undefined) return loadConfig(file, (input) => applyRedisOverride(input, opts.redis));
  const input: ConfigInput = {};
  applyRedisOverride(input, opts.redis);
  return parseConfig(input, '(built-in defaults)');
}

/** `cli:<user>@<hostname>` unless --actor says otherwise. */
export function actorOf(opts: GlobalOptions, env: NodeJS.ProcessEnv = process.env): string {
  if (opts.actor) return opts.actor;
  let user: string;
  try {
    user = userInfo().username;
  } catch {
    // No passwd entry (containers running as an arbitrary uid): fall back to the environment.
    user = env.USER ?? env.LOGNAME ?? String(process.getuid?.() ?? 'unknown');
  }
  return `cli:${user}@${hostname()}`;
}

export interface DirectoryAccess {
  /**
   * May an embedded directory file that does not exist yet be created? Only `directory apply`
   * says yes: a mistyped --config or a command run from the wrong folder must not quietly make
   * an empty directory (and answer "no stores").
   */
  mayCreate?: boolean;
}

/** A missing embedded directory, when the command may not create it. */
export class DirectoryMissingError extends Error {
  constructor(readonly file: string) {
    super(`no directory file at ${file} (embedded backend): check --config / $STOREROUTE_CONFIG, `
      + 'or create it with `storeroute directory apply FILE`');
    this.name = 'DirectoryMissingError';
  }
}

/**
 * Opens the configured directory, runs `fn`, and closes the directory whatever happens. Logs go to
 * stderr (errors only, unless $STOREROUTE_CLI_LOG says otherwise) so they never mix with a
 * command's output on stdout.
 */
export async function withDirectory<T>(
  opts: GlobalOptions,
  fn: (directory: Directory, config: Config) => Promise<T>,
  env: NodeJS.ProcessEnv = process.env,
  access: DirectoryAccess = {},
): Promise<T> {
  const config = loadCliConfig(opts, env);
  const embedded = config.directory.embedded;
  if (config.directory.backend === 'embedded' && !access.mayCreate && !embedded.seed && !existsSync(embedded.file)) {
    throw new DirectoryMissingError(resolve(embedded.file));
  }
  // A one-shot command reports its own outcome on stderr; the directory's reconnect warnings would
  // only repeat it as JSON. STOREROUTE_CLI_LOG=debug shows them when diagnosing.
  const level = env.STOREROUTE_CLI_LOG || 'error';
  const logger = pino({ level, base: { cmd: 'storeroute-cli' } }, pino.destination({ dest: 2, sync: true }));
  const directory = await createDirectory(config.directory, { logger, metrics: new Registry() });
  try {
    return await fn(directory, config);
  } finally {
    await directory.close();
  }
}
