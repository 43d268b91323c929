/**
 * `storeroute check replication`: compares every user's mailboxes on its store's current master
 * and replica over IMAP (src/check/). A live progress line on stderr when it is a terminal, then
 * the report on stdout (or `--json`).
 *
 * Exit: 0 every user identical; 1 differences found; 2 bad input or configuration (unknown
 * store/user, bad --rate, a slot refusing the admin login); 75 some users not compared to the end
 * (a slot or the directory unreachable, users in flight): run again later.
 */
import { InvalidArgumentError, Option, type Command } from 'commander';
import { pino } from 'pino';
import { thresholdsOf } from '../agent/index.js';
import {
  CheckError, checkReplication, SETUP_CODES, type AgentAccess, type CheckMode, type CheckProgress, type ReplicationReports,
} from '../check/index.js';
import type { Config } from '../config/index.js';
import type { Directory } from '../directory/index.js';
import { globalsOf, positiveInt } from './command.js';
import { withDirectory } from './context.js';
import { renderReport } from './check-report.js';
import { EXIT, printJson, SilentExit, UsageError, type CliIo } from './io.js';
import { parseDuration } from './replay.js';
import { readReplication, type ReportedSlot } from './replication.js';

interface CheckFlags {
  all?: boolean;
  store: string[];
  user: string[];
  deep?: boolean | string;
  rate?: number;
  concurrency: number;
  recheckAfter?: number;
  repair?: boolean;
  agent: string[];
  json?: boolean;
}

/** commander argParser for --rate: users per second, any number above 0 (0.5 = one every 2 s). */
export function parseRate(value: string): number {
  const n = /^\s*\d*\.?\d+\s*$/.test(value) ? Number(value) : NaN;
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`expected a number of users per second above 0, got "${value}"`);
  return n;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** `--agent m1=http://10.0.0.5:9027`, repeated: machine → agent URL. */
export function parseAgents(values: string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const v of values) {
    const m = /^([^=\s]+)=(https?:\/\/\S+)$/.exec(v);
    if (!m) throw new UsageError(`--agent: expected MACHINE=http://host:port, got "${v}"`);
    out.set(m[1]!, m[2]!);
  }
  return out;
}

function modeOf(deep: boolean | string | undefined): CheckMode {
  if (deep === undefined || deep === false) return 'quick';
  if (deep === true) return 'deep';
  if (deep === 'all') return 'deep-all';
  throw new UsageError(`--deep takes no value (mailboxes quick found different) or "all", got "${deep}"`);
}

/**
 * The agents to ask for --repair: those named with --agent, else every agent's own URL from the
 * reports it publishes to the directory status (each agent says where it listens).
 */
async function agentAccess(config: Config, flags: CheckFlags, directory: Directory): Promise<AgentAccess | null> {
  const urls = parseAgents(flags.agent);
  if (urls.size === 0 && flags.repair) {
    for (const [machine, doc] of Object.entries(await directory.readStatus('agent'))) {
      const url = (doc as { url?: unknown } | null)?.url;
      if (typeof url === 'string' && /^https?:\/\//.test(url)) urls.set(machine, url);
    }
  }
  if (urls.size === 0) return null;
  if (!config.agent.token) {
    throw new CheckError('CHECK_NOT_CONFIGURED', '--agent: agent.token is not set in the config; the agents answer only with their token');
  }
  return { urls, token: config.agent.token, timeoutMs: config.replay.imap.timeoutMs };
}

/**
 * The agents' reports as they publish them to the directory status (`storeroute status` reads the
 * same). A report is stale after staleAfterIntervals of the larger of this config's interval and
 * the one its agent measures at, as in replication.ts.
 */
function replicationReports(directory: Directory, config: Config): ReplicationReports {
  const t = thresholdsOf(config.agent);
  return {
    read: async () => (await readReplication(directory, config.agent)).reports,
    thresholds: (r) => ({ ...t, staleAfterMs: config.agent.staleAfterIntervals * Math.max(config.agent.intervalMs, (r as ReportedSlot).intervalMs ?? 0) }),
  };
}

function seconds(ms: number): string {
  return ms >= 3_600_000 ? `${Math.floor(ms / 3_600_000)}h${Math.round((ms % 3_600_000) / 60_000)}m`
    : ms >= 60_000 ? `${Math.floor(ms / 60_000)}m${Math.round((ms % 60_000) / 1000)}s` : `${Math.round(ms / 1000)}s`;
}

/** One line, redrawn in place: users done/total, differences so far, rate, ETA. */
export function progressLine(p: CheckProgress): string {
  const eta = p.etaMs === null ? '?' : seconds(p.etaMs);
  return `\rchecking: ${p.done}/${p.total} users, ${p.different} different, ${p.usersPerSecond.toFixed(1)} users/s, ETA ${eta}\x1b[K`;
}

export function registerCheck(program: Command, io: CliIo): void {
  const check = program.command('check').description('verify the cluster');
  check.command('replication')
    .description('compare each user\'s mailboxes on its store\'s current master and replica over IMAP')
    .option('--all', 'every user in the directory')
    .option('--store <store>', 'the users of this store (repeatable)', collect, [])
    .option('--user <user>', 'this user (repeatable)', collect, [])
    .addOption(new Option('--deep [all]', 'compare messages (UID, Message-ID, size, date, flags) of the mailboxes found different; '
      + '--deep=all: of every mailbox'))
    .addOption(new Option('--rate <users-per-second>', 'start at most this many users per second').argParser(parseRate))
    .addOption(new Option('--concurrency <n>', 'users checked at once').argParser(positiveInt).default(4))
    .addOption(new Option('--recheck-after <duration>', 'wait before re-checking a user found different or in flight (e.g. 2s)')
      .argParser(parseDuration))
    .option('--repair', 'ask the master\'s agent to queue each differing user for replication, wait, and check again')
    .option('--agent <machine=url>', 'the slot agent of a machine, for --repair (repeatable; default: the URL each agent '
      + 'publishes in its reports)', collect, [])
    .option('--json', 'machine-readable report on stdout')
    .action(async (flags: CheckFlags, cmd: Command) => {
      if (flags.all && (flags.store.length > 0 || flags.user.length > 0)) throw new UsageError('--all checks every user: do not combine it with --store or --user');
      const mode = modeOf(flags.deep);
      const interactive = process.stderr.isTTY === true && !flags.json;
      const code = await withDirectory(globalsOf(cmd), async (directory, config) => {
        // Per-connection trouble is in the report; the log only carries what the report cannot (debug).
        const level = io.env.STOREROUTE_CLI_LOG || 'error';
        const logger = pino({ level, base: { cmd: 'storeroute-check' } }, pino.destination({ dest: 2, sync: true }));
        let lastDraw = 0;
        try {
          const result = await checkReplication({
            directory, imap: config.replay.imap, logger, mode,
            scope: flags.all ? { all: true } : { stores: flags.store, users: flags.user },
            concurrency: flags.concurrency,
            ...(flags.rate !== undefined ? { ratePerSecond: flags.rate } : {}),
            ...(flags.recheckAfter !== undefined ? { recheckDelayMs: flags.recheckAfter } : {}),
            replication: replicationReports(directory, config), agents: await agentAccess(config, flags, directory), repair: flags.repair === true,
            onProgress: (p) => {
              if (!interactive) return;
              const now = Date.now();
              if (p.done === p.total || now - lastDraw > 200) {
                lastDraw = now;
                io.stderr(progressLine(p));
              }
            },
          });
          if (interactive) io.stderr('\r\x1b[K');
          for (const f of result.slotFailures) io.stderr(`error [${f.code}]: ${f.message}\n`);
          for (const w of result.warnings) io.stderr(`warning: ${w}\n`);
          // The last full run goes into the directory status, where `storeroute status` shows it
          // ("last check: 3 days ago, 0 differences"). A partial run (--store, --user) says
          // nothing about the cluster, so it is not published.
          if (result.figures.full) {
            await directory.publishStatus('check', 'replication', result.figures).catch((err: unknown) => {
              io.stderr(`warning: could not publish this run to the directory status: ${(err as Error).message}\n`);
            });
          }
          if (flags.json) printJson(io, result);
          else io.stdout(renderReport(result));
          return result.figures.exitCode;
        } catch (err) {
          if (interactive) io.stderr('\r\x1b[K');
          if (err instanceof CheckError && SETUP_CODES.has(err.code)) {
            io.stderr(`error [${err.code}]: ${err.message}\n`);
            return EXIT.usage;
          }
          throw err;
        }
      }, io.env);
      if (code !== EXIT.ok) throw new SilentExit(code);
    });
}
