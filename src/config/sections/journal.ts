import { z } from 'zod';
import { ms } from './common.js';

export const journalSection = z.strictObject({
  enabled: z.boolean().default(true),
  dir: z.string().min(1).default('var/journal'),
  /** Keep records this long (default 5 minutes). */
  retentionMs: ms(1000).default(300_000),
  /** …and at most this many bytes on disk, whichever bites first. */
  maxBytes: z.number().int().min(1024 * 1024).default(2 * 1024 * 1024 * 1024),
  /** Start a new segment file past this size. */
  segmentBytes: z.number().int().min(64 * 1024).default(64 * 1024 * 1024),
  /** durable: final reply waits for fsync (group commit). interval: fsync on a timer. off: never. */
  durability: z.enum(['durable', 'interval', 'off']).default('durable'),
  fsyncIntervalMs: ms(10).default(1_000),
  /** Add a Message-ID to messages without one, so a replayed copy can be recognised. */
  addMessageId: z.boolean().default(true),
  messageIdDomain: z.string().min(1).optional(),
});
