import { z } from 'zod';
import { host, ms, portOrZero, secret } from './common.js';

/**
 * `storeroute agent`: one per IMAP machine. It measures each local slot's sync log, repairs
 * replication the way FastMail's monitorsync did, and runs a fixed allow-list of slot operations.
 *
 * Commands are argv arrays, never shell strings. Placeholders are replaced inside each element:
 * {conf} (the slot's imapd.conf), {slot}, {peer} (the address of the slot this one replicates
 * to, from the directory), {file} (a pending log file), {user} (validated user name), {target}
 * (the address of a named target slot). The element `{channelArgs}` alone becomes `-n <channel>`
 * for a named channel and nothing for the default one. A placeholder with no value is refused.
 *
 * Why {peer} and not `sync_host` in imapd.conf: after a failover the direction of replication
 * flips, and imapd.conf cannot know which slot is the master today; the directory does.
 *
 * Cyrus 3.6.1 facts behind the defaults: `sync_client -r` daemonizes (the command returns at
 * once); `-r -f FILE` and `-u USER` stay in the foreground; `-r -f FILE` does not remove FILE,
 * the agent does after a zero exit; with the replica down `-r -f` retries for up to ~16 minutes,
 * `-o` notwithstanding, so every command has a deadline after which its process group is killed.
 */
const SYNC_CLIENT = '/usr/lib/cyrus/bin/sync_client';
const argv = z.array(z.string().min(1)).min(1);

const slotName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/, 'expected a slot name: letters, digits, _ and -');

const agentSlot = z.strictObject({
  /** The slot's name in the directory. */
  name: slotName,
  /** Its imapd.conf: the agent reads configdirectory, sync_log and sync_log_channels from it. */
  imapdConf: z.string().min(1),
  /** The sync_log channel its rolling sync_client consumes (`-n`); absent: the default channel. */
  channel: z.string().regex(/^[A-Za-z0-9_-]+$/, 'expected a channel name').optional(),
});

export const agentSection = z.strictObject({
  /** This machine's name in the directory; required to run the agent. */
  machine: z.string().min(1).optional(),
  /** How often each slot's sync log is measured and a report published. */
  intervalMs: ms(200).default(5_000),
  /** A report older than this many intervals counts as unknown, never as caught up. */
  staleAfterIntervals: z.number().int().min(2).max(100).default(3),
  thresholds: z.strictObject({
    /** Pending log above this: the store is behind (FastMail: 10 KB ≈ a couple of minutes of log). */
    behindBytes: z.number().int().min(1).default(10 * 1024),
    /** Pending log above this: alert (FastMail: 100 KB ≈ 20 minutes of log). */
    alertBytes: z.number().int().min(1).default(100 * 1024),
    /** Oldest pending record older than this: nothing is making progress, the store is stalled. */
    stalledAfterMs: ms(1_000).default(60_000),
  }).prefault({}),
  /** At most this many bytes of each pending file are scanned to name its users (new lines only, each once). */
  userScanBytes: z.number().int().min(0).default(1024 * 1024),
  /** The local slots. A slot the directory does not know, or places elsewhere, stops the agent. */
  slots: z.array(agentSlot).default([]).superRefine((slots, ctx) => {
    const seen = new Set<string>();
    for (const [i, s] of slots.entries()) {
      if (seen.has(s.name)) ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `slot ${s.name} is listed twice` });
      seen.add(s.name);
    }
  }),
  /** monitorsync's repairs, each on its own switch. They only ever act on a store's current master. */
  repairs: z.strictObject({
    /** Replay a pending file no client owns (log-<PID> of a dead process, log-run with no rolling client). */
    orphanFiles: z.boolean().default(true),
    /** Start a rolling sync_client on a current master that has none. */
    startRollingClient: z.boolean().default(true),
    /** Wait before the first retry of a failed start, doubled per failure up to backoffMaxMs. */
    backoffMs: ms(100).default(10_000),
    backoffMaxMs: ms(1_000).default(300_000),
    /** A repair command still running after this is killed (its whole process group). */
    timeoutMs: ms(1_000).default(120_000),
  }).prefault({}),
  commands: z.strictObject({
    /** Replays one pending file; must stay in the foreground and exit 0 only on success. */
    replayFile: argv.default([SYNC_CLIENT, '-C', '{conf}', '-S', '{peer}', '{channelArgs}', '-r', '-f', '{file}']),
    /** Starts the rolling client; must return once it is started (sync_client -r daemonizes). */
    startRollingClient: argv.default([SYNC_CLIENT, '-C', '{conf}', '-S', '{peer}', '{channelArgs}', '-r']),
    /**
     * Queues one user in the slot's sync log (writes `USER <name>` to every channel). Debian 12
     * installs cyr_synclog and sync_client in /usr/lib/cyrus/bin, not in PATH (/usr/sbin has
     * only the `cyrus` wrapper script).
     */
    queueUser: argv.default(['/usr/lib/cyrus/bin/cyr_synclog', '-C', '{conf}', '-u', '{user}']),
    /** One-shot replication of one user to a named slot (3.6.1 exits 0 even for a user it does not have). */
    syncUser: argv.default([SYNC_CLIENT, '-C', '{conf}', '-S', '{target}', '-u', '{user}']),
    /** Stops / starts the slot's Cyrus services (site-specific, e.g. systemctl stop cyrus@{slot}). */
    stopServices: argv.optional(),
    startServices: argv.optional(),
  }).prefault({}),
  /** Operations: default and largest deadline a caller may ask for. */
  ops: z.strictObject({
    defaultDeadlineMs: ms(100).default(60_000),
    maxDeadlineMs: ms(1_000).default(600_000),
  }).prefault({}),
  /** The agent's own HTTP port: /metrics, /healthz, and POST /ops/<name> with the token. */
  listen: z.strictObject({ host: host.default('127.0.0.1'), port: portOrZero.default(9027) }).prefault({}),
  /** Bearer token for /ops/* and /report (unset: operations are refused). Secret. */
  token: secret.optional(),
}).superRefine((a, ctx) => {
  if (a.thresholds.alertBytes < a.thresholds.behindBytes) {
    ctx.addIssue({ code: 'custom', path: ['thresholds', 'alertBytes'], message: `must be at least behindBytes (${a.thresholds.behindBytes})` });
  }
  if (a.repairs.backoffMaxMs < a.repairs.backoffMs) {
    ctx.addIssue({ code: 'custom', path: ['repairs', 'backoffMaxMs'], message: `must be at least backoffMs (${a.repairs.backoffMs})` });
  }
  if (a.ops.maxDeadlineMs < a.ops.defaultDeadlineMs) {
    ctx.addIssue({ code: 'custom', path: ['ops', 'maxDeadlineMs'], message: `must be at least defaultDeadlineMs (${a.ops.defaultDeadlineMs})` });
  }
});

export type AgentConfig = z.output<typeof agentSection>;
