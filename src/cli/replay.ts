/**
 * `storeroute replay --store S …`: re-deliver what this cluster's proxies delivered to a store's
 * old master. With the Redis directory every proxy instance has its own journal, so the request
 * is fanned out to every live instance's admin API and the results summed; with the embedded
 * directory the journal is local and read here (alongside a running proxy, without its lock).
 */
import { InvalidArgumentError, Option, type Command } from 'commander';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import type { Config } from '../config/index.js';
import { ConfigError } from '../core/errors.js';
import { createRedisClient } from '../directory/index.js';
import { openJournalReader } from '../journal/index.js';
import {
  listInstances, parseReplayRequest, registryKey, replayOnInstance, replayStore, sumSummaries,
  type InstanceFailureCode, type InstanceReplayResult, type ReplayItem, type ReplaySummary,
} from '../replay/index.js';
import { actorOf, loadCliConfig, withDirectory, type GlobalOptions } from './context.js';
import { EXIT, printJson, processIo, SilentExit, UsageError, type CliIo } from './io.js';

interface ReplayFlags {
  store: string;
  since?: Date;
  last?: number;
  until?: Date;
  user?: string;
  all?: boolean;
  dryRun?: boolean;
  check: boolean;
  again?: boolean;
  json?: boolean;
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "90s", "5m", "2h": a duration in ms. */
export function parseDuration(value: string): number {
  const m = /^(\d+)(ms|s|m|h|d)$/.exec(value.trim());
  if (!m) throw new InvalidArgumentError(`expected a duration like 30s, 5m or 2h, got "${value}"`);
  return Number(m[1]) * UNITS[m[2]!]!;
}

/** An ISO-8601 time ("2024-05-01T10:00:00Z", "2024-05-01 10:00") or epoch milliseconds. */
export function parseTime(value: string): Date {
  const d = /^\d{12,}$/.test(value) ? new Date(Number(value)) : new Date(value);
  if (Number.isNaN(d.getTime())) throw new InvalidArgumentError(`expected an ISO-8601 time, got "${value}"`);
  return d;
}

/** A one-line progress bar, redrawn with \r on a terminal. */
function progressLine(done: number, total: number, counts: Record<string, number>): string {
  const width = 30;
  const filled = total === 0 ? width : Math.round((done / total) * width);
  const tally = Object.entries(counts).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}`).join(', ');
  return `\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total}${tally ? `  ${tally}` : ''}\x1b[K`;
}

function itemLine(i: ReplayItem): string {
  const where = i.instance ? `${i.instance} ` : '';
  return `${i.outcome.padEnd(15)} ${where}${i.recordId} ${i.address} ${i.messageId ?? '(no Message-ID)'}${i.detail ? `  ${i.detail}` : ''}\n`;
}

function summaryLine(s: ReplaySummary): string {
  const parts = [`selected ${s.selected}`, `already present ${s.alreadyPresent}`, `delivered ${s.delivered}`,
    `refused ${s.refused}`, `failed ${s.failed}`, `already replayed ${s.skippedAlreadyReplayed}`];
  if (s.dryRun) parts.push(`would deliver ${s.wouldDeliver} (dry run: nothing was delivered)`);
  return `replay ${s.store} → ${s.master || '?'}: ${parts.join(', ')}\n`;
}

async function replayLocally(io: CliIo, globals: GlobalOptions, flags: ReplayFlags, request: ReturnType<typeof parseReplayRequest>,
  interactive: boolean): Promise<{ summary: ReplaySummary }> {
  return withDirectory(globals, async (directory, config) => {
    const logger = pino({ level: 'warn', base: { cmd: 'storeroute-replay' } }, pino.destination({ dest: 2, sync: true }));
    const journal = openJournalReader(config.journal.dir, (d) =>
      logger.warn({ file: d.file, kind: d.kind, offset: d.offset, reason: d.reason }, 'journal_frame_skipped'));
    const counts: Record<string, number> = {};
    let lastDraw = 0;
    const summary = await replayStore({
      ...request, journal, directory, imap: config.replay, obs: { logger, metrics: new Registry() },
      onProgress: (done, total, item) => {
        counts[item.outcome] = (counts[item.outcome] ?? 0) + 1;
        if (flags.json) return;
        if (!interactive) return io.stdout(itemLine(item));
        const now = Date.now();
        if (done === total || now - lastDraw > 100) {
          lastDraw = now;
          io.stderr(progressLine(done, total, counts));
        }
      },
    });
    if (interactive && !flags.json && summary.selected > 0) io.stderr('\n');
    return { summary };
  }, io.env);
}

/** One instance whose replay produced no summary. */
interface InstanceFailure {
  instance: string;
  url: string;
  code: InstanceFailureCode;
  message: string;
}

interface FanOutResult {
  /** null when no instance answered: there is nothing to sum, and printing zeros would mislead. */
  summary: ReplaySummary | null;
  failures: InstanceFailure[];
}

/**
 * The exit code for failed instances, the least retryable first: a wrong token (usage: fix the
 * config), an unexpected answer (internal), a refused request (refused), then unreachable or 5xx
 * (tempfail: running the same replay again later may work; settled records are skipped).
 */
function exitForFailures(failures: InstanceFailure[]): number | null {
  const order: Array<[InstanceFailureCode, number]> = [['INSTANCE_UNAUTHORIZED', EXIT.usage], ['INSTANCE_BAD_RESPONSE', EXIT.internal],
    ['INSTANCE_REFUSED', EXIT.refused], ['INSTANCE_UNAVAILABLE', EXIT.tempfail]];
  for (const [code, exit] of order) if (failures.some((f) => f.code === code)) return exit;
  return null;
}

/** JSON.stringify for what came out of Redis: quoted, control characters escaped. */
const shown = (s: string) => JSON.stringify(s);

async function replayEverywhere(io: CliIo, config: Config, configFile: string, request: ReturnType<typeof parseReplayRequest>,
  flags: ReplayFlags): Promise<FanOutResult> {
  const token = config.admin.token;
  // Checked before anything is contacted: without the token every instance answers 401, and no
  // registry entry can be verified.
  if (!token) {
    throw new ConfigError(configFile, [{ path: 'admin.token', message: 'not set: with the redis directory, replay asks each '
      + 'instance\'s admin API with the instances\' admin.token (and trusts only registry entries signed with it); set the same value here' }]);
  }
  const key = await registryKey(token);
  const logger = pino({ level: 'warn', base: { cmd: 'storeroute-replay' } }, pino.destination({ dest: 2, sync: true }));
  const redis = createRedisClient(config.directory.redis, { logger, metrics: new Registry() }, { role: 'replay-cli' });
  let results: InstanceReplayResult[];
  try {
    const instances = await listInstances(redis, config.directory.redis.keyPrefix, { staleAfterMs: 3 * config.admin.heartbeatMs, key });
    for (const u of instances.untrusted) {
      const why = u.reason === 'INSTANCE_UNSIGNED' ? 'is not signed' : 'has a signature that does not match this admin.token';
      io.stderr(`warning [${u.reason}]: instance ${shown(u.name)} (${shown(u.url)}) ${why}: skipped, the token was not sent to it\n`);
    }
    for (const name of instances.invalid) io.stderr(`warning: instance ${shown(name)}: unreadable registry entry, skipped\n`);
    for (const s of instances.stale) io.stderr(`warning: instance ${s.name} (${s.url}) last seen ${new Date(s.lastSeen).toISOString()}: skipped as stale\n`);
    if (instances.live.length === 0) {
      const hint = instances.untrusted.length > 0
        ? ' (entries that fail the signature check were skipped: is admin.token here the same as on the instances?)' : '';
      throw new UsageError(`no live storeroute instance with a verified entry is registered in the directory's Redis: nothing to replay from${hint}`);
    }
    if (!flags.json) io.stderr(`replaying on ${instances.live.length} instance(s): ${instances.live.map((i) => i.name).join(', ')}\n`);
    // Dates travel as ISO strings; the instance validates the request again.
    const wire = { ...request, since: request.since?.toISOString(), until: request.until?.toISOString() };
    results = await Promise.all(instances.live.map((i) => replayOnInstance(i, wire, token, 15 * 60_000)));
  } finally {
    redis.disconnect();
  }
  const failures: InstanceFailure[] = [];
  for (const r of results) {
    if (r.error) failures.push({ instance: r.instance, url: r.url, ...r.error });
    else if (!flags.json) for (const item of r.summary!.items) io.stdout(itemLine(item));
  }
  const answered = results.flatMap((r) => (r.summary ? [r.summary] : []));
  return { summary: answered.length > 0 ? sumSummaries(request.store, request.dryRun, answered) : null, failures };
}

/** `io` defaults to the process's own; src/cli/index.ts may pass its CliIo for in-process tests. */
export function registerReplay(program: Command, io: CliIo = processIo()): void {
  program.command('replay')
    .description('re-deliver journaled messages that went to a store\'s old master to its current master')
    .requiredOption('--store <store>', 'the store that failed over')
    .addOption(new Option('--since <time>', 'only records received at or after this time (ISO-8601)').argParser(parseTime).conflicts('last'))
    .addOption(new Option('--last <duration>', 'only records received in the last 30s / 5m / 2h').argParser(parseDuration))
    .addOption(new Option('--until <time>', 'only records received at or before this time (ISO-8601)').argParser(parseTime))
    .option('--user <user>', 'only this user\'s recipients')
    .option('--all', 'include records delivered to the current master too')
    .option('--dry-run', 'select and check, deliver nothing')
    .option('--no-check', 'do not look for the Message-ID on the new master over IMAP first')
    .option('--again', 'replay records a previous replay already settled')
    .option('--json', 'machine-readable summary (with every item) on stdout')
    .action(async (flags: ReplayFlags, cmd: Command) => {
      const globals = cmd.optsWithGlobals<GlobalOptions>();
      const config = loadCliConfig(globals, io.env);
      const since = flags.last !== undefined ? new Date(Date.now() - flags.last) : flags.since;
      const request = parseReplayRequest({
        store: flags.store, since, until: flags.until, user: flags.user, all: flags.all ?? false,
        dryRun: flags.dryRun ?? false, check: flags.check, again: flags.again ?? false, actor: actorOf(globals, io.env),
      }, 'command line');
      // A progress bar only when a person watches; plain per-item lines when piped or logged.
      const interactive = process.stderr.isTTY === true && !flags.json;
      const configFile = globals.config ?? (io.env.STOREROUTE_CONFIG || '(built-in defaults)');
      const { summary, failures } = config.directory.backend === 'redis'
        ? await replayEverywhere(io, config, configFile, request, flags)
        : { ...await replayLocally(io, globals, flags, request, interactive), failures: [] };
      if (flags.json) printJson(io, summary ? { ...summary, errors: failures } : { store: request.store, dryRun: request.dryRun, errors: failures });
      else if (summary) io.stdout(summaryLine(summary));
      for (const f of failures) io.stderr(`error [${f.code}]: instance ${f.instance} (${f.url}): ${f.message}\n`);
      if (failures.length > 0) {
        io.stderr(summary
          ? `replay incomplete: ${failures.length} instance(s) failed, their journals were not replayed; run the same command again once they answer\n`
          : 'replay failed: no instance answered, nothing was replayed\n');
      }
      const failed = exitForFailures(failures);
      if (failed !== null) throw new SilentExit(failed);
      if (summary && summary.failed > 0) throw new SilentExit(EXIT.refused);
    });
}
