import { z } from 'zod';
import { ms, host, portOrZero } from './common.js';

export const lmtpSection = z.strictObject({
  enabled: z.boolean().default(true),
  /** TCP listener (postfix: lmtp:inet:host:port). Set `port: 0` in tests for a free port. */
  listen: z.strictObject({ host: host.default('127.0.0.1'), port: portOrZero.default(2424) }).nullable().prefault({}),
  /** Unix socket listener (postfix: lmtp:unix:path). */
  socket: z.string().min(1).nullable().default(null),
  /** Name in the greeting and LHLO reply. */
  hostname: z.string().min(1).default('storeroute'),
  /** Advertised SIZE; larger messages get 552 5.3.4. */
  maxMessageSize: z.number().int().min(1024).default(50 * 1024 * 1024),
  maxClients: z.number().int().min(1).default(500),
  maxRecipients: z.number().int().min(1).default(1000),
  /** Idle client timeout (421 4.4.2). */
  socketTimeoutMs: ms(1000).default(300_000),
  /** `+` for alice+lists@…; empty string turns detail stripping off. */
  recipientDelimiter: z.string().max(4).default('+'),
  /** Domains whose local part is also looked up (empty: every domain). */
  localDomains: z.array(z.string().min(1)).default([]),
  /** Deadline for one RCPT's directory lookup + backend RCPT (451 on expiry). */
  rcptDeadlineMs: ms(100).default(60_000),
  /** On SIGTERM: stop accepting, let transactions finish for this long, then tempfail the rest. */
  shutdownGraceMs: ms(0).default(30_000),
  backend: z.strictObject({
    connectTimeoutMs: ms(100).default(5_000),
    greetingTimeoutMs: ms(100).default(10_000),
    commandTimeoutMs: ms(100).default(30_000),
    /** Max time the backend may stall accepting DATA bytes (not counted while we are paused). */
    dataTimeoutMs: ms(100).default(60_000),
    /** After the final dot: time for all per-recipient replies. */
    finalReplyTimeoutMs: ms(100).default(120_000),
    maxSessionsPerSlot: z.number().int().min(1).default(32),
    /** Idle pooled sessions are closed after this. */
    idleTimeoutMs: ms(100).default(30_000),
    /** Name sent in LHLO. Default: lmtp.hostname. */
    lhloName: z.string().min(1).optional(),
  }).prefault({}),
});
