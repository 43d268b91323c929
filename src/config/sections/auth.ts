import { z } from 'zod';
import { ms, host, portOrZero, port, secret } from './common.js';

export const authSection = z.strictObject({
  enabled: z.boolean().default(true),
  listen: z.strictObject({ host: host.default('127.0.0.1'), port: portOrZero.default(9000) }).prefault({}),
  path: z.string().startsWith('/').default('/auth'),
  /** nginx `auth_http_header NAME VALUE;` — requests without it get 403. */
  sharedSecret: z.strictObject({ header: z.string().min(1).default('X-Storeroute-Secret'), value: secret }).optional(),
  /** Client addresses (of nginx) allowed to ask, as IPs or CIDRs. */
  allowFrom: z.array(z.string().min(1)).default(['127.0.0.0/8', '::1/128']),
  /** `backend`: the IMAP server checks the password. `directory`: scrypt hash on the user record. */
  verify: z.enum(['backend', 'directory']).default('backend'),
  /** Strip `@domain` from Auth-User before the backend login when the directory user has none. */
  maxLoginAttempts: z.number().int().min(1).default(10),
  failWaitSeconds: z.number().int().min(0).default(3),
  /** While a store fails over / a user moves / the directory is down: hold logins with WAIT this long in all. */
  holdMaxMs: ms(0).default(30_000),
  holdWaitSeconds: z.number().int().min(1).default(1),
  throttle: z.strictObject({
    enabled: z.boolean().default(true),
    windowSeconds: z.number().int().min(1).default(300),
    /** Failures allowed per IP / per user in the window before Auth-Wait starts growing. */
    perIp: z.number().int().min(1).default(20),
    perUser: z.number().int().min(1).default(10),
    maxWaitSeconds: z.number().int().min(1).default(60),
    exempt: z.array(z.string().min(1)).default([]),
  }).prefault({}),
  /** Auth-Protocol smtp: where submission goes; null refuses smtp clearly. */
  smtp: z.strictObject({ server: z.string().min(1), port }).nullable().default(null),
});
