import { z } from 'zod';
import { ms, secret, port, host } from './common.js';

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
    url: z.string().min(1).default('redis://127.0.0.1:6379'),
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
