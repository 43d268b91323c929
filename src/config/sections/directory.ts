import { z } from 'zod';
import { ms, secret, port, host } from './common.js';

/**
 * What ioredis can connect to: `redis://` or `rediss://` (TLS) with a host, an optional port and
 * an optional numeric database, or an absolute path to a unix socket. Anything else is refused at
 * load: ioredis takes "not a url at all" as a host name and "http://x" as a TCP target, so the
 * process would die later with a stack trace or loop on connect errors instead of saying which key
 * is wrong.
 */
export function redisUrlProblem(value: string): string | null {
  if (value.startsWith('/')) return null;
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    return 'expected redis://[:password@]host[:port][/db], rediss://… or an absolute unix socket path';
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') return `expected a redis:// or rediss:// URL, not ${u.protocol}//`;
  if (!u.hostname) return 'the URL has no host';
  if (u.pathname && u.pathname !== '/' && !/^\/\d+$/.test(u.pathname)) return `the database must be a number (/0 … /15), got "${u.pathname}"`;
  return null;
}

const redisUrl = z.string().min(1).superRefine((value, ctx) => {
  const problem = redisUrlProblem(value);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

export const directorySection = z.strictObject({
  /** `embedded`: one machine, in-process, file-backed. `redis`: shared by every proxy. */
  backend: z.enum(['embedded', 'redis']).default('embedded'),
  embedded: z.strictObject({
    /** Where the embedded directory lives; rewritten atomically on every mutation. */
    file: z.string().min(1).default('var/directory.json'),
    /** Loaded into `file` when `file` does not exist yet (first start). */
    seed: z.string().min(1).optional(),
    /** Audit records kept. */
    historyLimit: z.number().int().min(10).default(10_000),
  }).prefault({}),
  redis: z.strictObject({
    /** redis://[:password@]host:port/db — ignored when `sentinels` is set. */
    url: redisUrl.default('redis://127.0.0.1:6379'),
    password: secret.optional(),
    sentinels: z.array(z.strictObject({ host, port })).min(1).optional(),
    /** The Sentinels' own password (their `requirepass`); `password` is the data nodes'. Secret. */
    sentinelPassword: secret.optional(),
    /** Sentinel master name. */
    masterName: z.string().min(1).default('storeroute'),
    /** Every key starts with `<keyPrefix>{dir}:` so one script's keys share a Cluster hash slot. */
    keyPrefix: z.string().min(1).default('storeroute:'),
    connectTimeoutMs: ms(100).default(2_000),
    /** A lookup that takes longer is a DirectoryUnavailableError (transient). */
    commandTimeoutMs: ms(10).default(1_000),
    historyLimit: z.number().int().min(10).default(10_000),
  }).prefault({}),
  cache: z.strictObject({
    enabled: z.boolean().default(true),
    maxEntries: z.number().int().min(100).default(200_000),
  }).prefault({}),
});
