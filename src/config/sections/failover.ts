import { z } from 'zod';
import { ms } from './common.js';

/**
 * `storeroute failover`: the one-command failover of a store (src/failover/). Hooks are argv
 * arrays, never shell strings; placeholders replaced inside each element: {store} {from} {to}
 * {fromMachine} {toMachine} {fromIp} {toIp}.
 */
const argv = z.array(z.string().min(1)).min(1);

export const failoverSection = z.strictObject({
  /**
   * After the store is marked failing-over, how long at most to wait for deliveries whose RCPT
   * was accepted just before (still in DATA) to finish. With the Redis directory and admin.token
   * the proxies are asked (GET /inflight) and the hold ends as soon as all say nothing is in
   * flight; a proxy that cannot be asked, or the embedded directory, means the whole wait.
   * Anything that still lands on the old master later is in the journal and found by the verify
   * replay.
   */
  holdMs: ms(0).default(2_000),
  /**
   * Before the hold, while mail still arrives, the old master's agent flushes for at most this
   * long: it shortens the hold, but under load the log is never empty, so running out is not a
   * failure. The drain after the hold is what must reach caught-up.
   */
  preFlushMs: ms(100).default(5_000),
  /** The drain (agent flush + waiting for `caught-up`) aborts after this, restoring the old master. */
  drainTimeoutMs: ms(1_000).default(60_000),
  /** How often the agents' published reports are read while waiting. */
  pollMs: ms(50).default(250),
  /** A runner that died leaves its lease behind this long at most. */
  leaseTtlMs: ms(1_000).default(600_000),
  /** Verify replays journal records received this long before the failover started. */
  replayWindowMs: ms(1_000).default(3_600_000),
  hooks: z.strictObject({
    /** A hook still running after this is killed (its process group) and counts as failed. */
    timeoutMs: ms(100).default(30_000),
    /** Run in order before the switch; a failure aborts the failover (old master active again). */
    beforeSwitch: z.array(argv).default([]),
    /** Run in order after the switch; a failure leaves the switch done and the store needing attention. */
    afterSwitch: z.array(argv).default([]),
  }).prefault({}),
});

export type FailoverConfig = z.infer<typeof failoverSection>;
