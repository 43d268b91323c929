/**
 * What a replay is asked to do, as it arrives from the CLI flags or as JSON on the admin API's
 * POST /replay (the CLI's fan-out sends exactly this). Times are ISO-8601 strings or epoch ms on
 * the wire; validation reports every problem at once and changes nothing.
 */
import { z } from 'zod';
import { ConfigError } from '../core/errors.js';
import { zodProblems } from '../config/index.js';

const time = z.union([z.date(), z.string().min(1), z.number().int().nonnegative()]).transform((v, ctx) => {
  const d = v instanceof Date ? v : new Date(v);
  if (Number.isNaN(d.getTime())) {
    ctx.addIssue({ code: 'custom', message: 'expected an ISO-8601 time or epoch milliseconds' });
    return z.NEVER;
  }
  return d;
});

export const replayRequestSchema = z.strictObject({
  store: z.string().min(1),
  since: time.optional(),
  until: time.optional(),
  user: z.string().min(1).optional(),
  /** Include records delivered to the store's current master. */
  all: z.boolean().default(false),
  dryRun: z.boolean().default(false),
  /** Check the new master over IMAP for the Message-ID before re-delivering. */
  check: z.boolean().default(true),
  /** Replay records the ledger says were already replayed. */
  again: z.boolean().default(false),
  /** Who asked (recorded in the ledger). */
  actor: z.string().min(1).default('unknown'),
}).refine((r) => !r.since || !r.until || r.since.getTime() <= r.until.getTime(), {
  message: 'since must not be after until', path: ['since'],
});

export type ReplayRequest = z.output<typeof replayRequestSchema>;
export type ReplayRequestInput = z.input<typeof replayRequestSchema>;

/** Validates a request; throws ConfigError (→ 400 on the admin API) naming every bad field. */
export function parseReplayRequest(input: unknown, source = 'replay request'): ReplayRequest {
  const result = replayRequestSchema.safeParse(input);
  if (!result.success) throw new ConfigError(source, zodProblems(result.error, input));
  return result.data;
}
