import { isIP } from 'node:net';
import { z } from 'zod';
import { ms, host, portOrZero, port, secret } from './common.js';

/** "10.0.0.0/8", "::1/128" or a bare address (same rule as src/auth/access.ts, kept here so config needs no capability). */
function isCidr(entry: string): boolean {
  const [address = '', prefix, ...rest] = entry.split('/');
  const v = isIP(address);
  if (v === 0 || rest.length > 0) return false;
  return prefix === undefined || (/^[0-9]{1,3}$/.test(prefix) && Number(prefix) <= (v === 4 ? 32 : 128));
}

const cidr = z.string().min(1).refine(isCidr, { message: 'expected an IP address or CIDR such as 10.0.0.0/8' });

export const authSection = z.strictObject({
  enabled: z.boolean().default(true),
  listen: z.strictObject({ host: host.default('127.0.0.1'), port: portOrZero.default(9000) }).prefault({}),
  path: z.string().startsWith('/').default('/auth'),
  /**
   * nginx `auth_http_header NAME VALUE;` — requests without it get 403. Required while auth is
   * enabled (checked at start-up, src/auth/access.ts authConfigProblems): without it any local process may ask where a user's
   * mailbox lives and, in `verify: directory` mode, test passwords, or in `backend` mode learn
   * which users exist (OK vs Invalid).
   */
  sharedSecret: z.strictObject({
    header: z.string().regex(/^[A-Za-z0-9-]+$/, { message: 'expected a header name (letters, digits, -)' }).default('X-Storeroute-Secret'),
    value: secret,
  }).optional(),
  /**
   * Serve without a shared secret (only allowFrom guards the endpoint). Risky: every process on an
   * allowed address (by default any local one) gets backend addresses and can probe which users
   * exist. Only for a socket nothing else can reach.
   */
  allowWithoutSecret: z.boolean().default(false),
  /** Client addresses (of nginx) allowed to ask, as IPs or CIDRs. */
  allowFrom: z.array(cidr).default(['127.0.0.0/8', '::1/128']),
  /** `backend`: the IMAP server checks the password. `directory`: scrypt hash on the user record. */
  verify: z.enum(['backend', 'directory']).default('backend'),
  /**
   * A login `alice@example.com` that the directory does not know is looked up as `alice`; when
   * found, nginx is told to log in to the backend as the directory's name (Auth-User).
   */
  stripDomain: z.boolean().default(true),
  /** When non-empty, only these domains are stripped (lower-case). */
  localDomains: z.array(z.string().min(1)).default([]),
  /** Past this Auth-Login-Attempt a failure carries no Auth-Wait, so nginx closes the connection. */
  maxLoginAttempts: z.number().int().min(1).default(10),
  failWaitSeconds: z.number().int().min(0).default(3),
  /** While a store fails over / a user moves / the directory is down: hold logins with WAIT this long in all. */
  holdMaxMs: ms(0).default(30_000),
  holdWaitSeconds: z.number().int().min(1).default(1),
  /** A directory lookup slower than this is treated like an unavailable directory (WAIT). */
  lookupTimeoutMs: ms(10).default(2_000),
  /** Request header bytes accepted; nginx's requests are well under 1 KiB unless the client sends huge credentials. */
  maxHeaderBytes: z.number().int().min(1024).max(65_536).default(8192),
  /** A request (connect to last header byte) slower than this is dropped. */
  requestTimeoutMs: ms(100).default(10_000),
  /**
   * How connections are read: `handle` drives libuv's TCP handle directly (src/auth/link-handle.ts:
   * no net.Socket per login, measured half the CPU and p99 per login), `net` uses node:net. `net`
   * is the escape hatch should a Node upgrade change the internal handle API (the server also
   * falls back to it by itself, logging auth_socket_layer_fallback, when the API looks different).
   */
  socketLayer: z.enum(['handle', 'net']).default('handle'),
  throttle: z.strictObject({
    enabled: z.boolean().default(true),
    windowSeconds: z.number().int().min(1).default(300),
    /** Failures allowed per IP / per user in the window before Auth-Wait starts growing. */
    perIp: z.number().int().min(1).default(20),
    perUser: z.number().int().min(1).default(10),
    maxWaitSeconds: z.number().int().min(1).default(60),
    exempt: z.array(cidr).default([]),
  }).prefault({}),
  /** Auth-Protocol smtp: where submission goes (an IP literal, as nginx requires); null refuses smtp clearly. */
  smtp: z.strictObject({
    server: z.string().min(1).refine((s) => isIP(s) !== 0, { message: 'expected an IP literal (nginx does not resolve names here)' }),
    port,
  }).nullable().default(null),
});

