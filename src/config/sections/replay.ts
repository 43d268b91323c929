import { z } from 'zod';
import { ms, secret, port } from './common.js';

export const replaySection = z.strictObject({
  /** IMAP admin used to check the new master for an already-present Message-ID. */
  imap: z.strictObject({
    user: z.string().min(1).default('cyrus'),
    password: secret.optional(),
    /** Default: the slot's imap port. */
    port: port.optional(),
    timeoutMs: ms(100).default(10_000),
  }).prefault({}),
  /** Recipients re-delivered at once. */
  concurrency: z.number().int().min(1).max(64).default(4),
});
