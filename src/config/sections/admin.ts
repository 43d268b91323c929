import { z } from 'zod';
import { host, portOrZero, secret, ms } from './common.js';

export const adminSection = z.strictObject({
  enabled: z.boolean().default(true),
  /** Loopback by default: the admin API can replay mail. */
  listen: z.strictObject({ host: host.default('127.0.0.1'), port: portOrZero.default(9025) }).prefault({}),
  /** Bearer token for everything but /metrics, /healthz, /readyz. Unset: those only. */
  token: secret.optional(),
  /** This instance's name in the directory's instance registry (default: hostname:port). */
  instanceName: z.string().min(1).optional(),
  /** URL other instances/CLI use to reach this admin API (default http://listen.host:port). */
  advertiseUrl: z.string().url().optional(),
  heartbeatMs: ms(100).default(5_000),
});
