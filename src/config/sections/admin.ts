import { z } from 'zod';
import type { FileProblem } from '../../core/errors.js';
import { host, portOrZero, secret, ms } from './common.js';

export const adminSection = z.strictObject({
  enabled: z.boolean().default(true),
  /** Loopback by default: the admin API can replay mail. */
  listen: z.strictObject({ host: host.default('127.0.0.1'), port: portOrZero.default(9025) }).prefault({}),
  /**
   * Bearer token for everything but /metrics, /healthz, /readyz (unset: those only), and the key
   * that signs this instance's entry in the Redis instance registry. With the redis directory,
   * `storeroute replay` needs it, the same on every instance and where the CLI runs.
   */
  token: secret.optional(),
  /** This instance's name in the directory's instance registry (default: hostname:port). */
  instanceName: z.string().min(1).optional(),
  /** URL other instances/CLI use to reach this admin API (default http://listen.host:port). */
  advertiseUrl: z.string().url().optional(),
  heartbeatMs: ms(100).default(5_000),
});

/** Values that appear in public examples (config/storeroute.example.yaml, README): anyone knows them. */
export const EXAMPLE_ADMIN_TOKENS: readonly string[] = ['change-me', 'change-me-before-production', 'change-me-to-a-long-random-value'];

/**
 * Below this a token is guessable offline: the signed registry entries in Redis let whoever can
 * read Redis test guesses without asking any instance.
 */
export const MIN_ADMIN_TOKEN_LENGTH = 16;

/** The parts of a config the admin warnings look at (structural, so this file needs no schema import). */
export interface AdminWarningInput {
  directory: { backend: string };
  journal: { enabled: boolean };
  admin: z.output<typeof adminSection>;
}

/**
 * What `config check` and `serve` should warn about, without refusing: the proxy delivers mail
 * fine either way, but with the redis directory `storeroute replay` reaches each instance's journal
 * only through its admin API with admin.token, so a crash replay would fail when it is needed.
 */
export function adminConfigWarnings(config: AdminWarningInput): FileProblem[] {
  const { admin } = config;
  const warnings: FileProblem[] = [];
  const fansOut = config.directory.backend === 'redis' && config.journal.enabled;
  if (fansOut && !admin.enabled) {
    warnings.push({ path: 'admin.enabled', message: 'false with the redis directory and the journal on: this instance does not '
      + 'register, so `storeroute replay` cannot reach its journal after a failover' });
  } else if (fansOut && !admin.token) {
    warnings.push({ path: 'admin.token', message: 'not set: with the redis directory `storeroute replay` asks each instance\'s '
      + 'admin API with this token and trusts only registry entries signed with it, so every replay would fail. Set the same '
      + 'long random value (e.g. `openssl rand -hex 32`) on every instance and where the CLI runs' });
  }
  if (admin.token && EXAMPLE_ADMIN_TOKENS.includes(admin.token)) {
    warnings.push({ path: 'admin.token', message: 'is the value from the public example: anyone can use it to replay mail '
      + 'and to sign instance registry entries. Replace it with a long random value (e.g. `openssl rand -hex 32`)' });
  } else if (admin.token && admin.token.length < MIN_ADMIN_TOKEN_LENGTH) {
    warnings.push({ path: 'admin.token', message: `shorter than ${MIN_ADMIN_TOKEN_LENGTH} characters: the signed instance `
      + 'registry in Redis lets whoever can read Redis guess it offline. Use a long random value (e.g. `openssl rand -hex 32`)' });
  }
  return warnings;
}
