/**
 * `storeroute failover STORE [--to SLOT] [--crash] [--force] [--json] [--yes]`: one store's
 * failover as phases (src/failover/), printed with timings as they run. The verify phase runs
 * `storeroute replay --store S --since T` itself (the same command, in-process), so it fans out
 * to every proxy with the Redis directory exactly as an operator's replay would.
 */
import { dirname, resolve } from 'node:path';
import { Command, Option } from 'commander';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { createRedisClient } from '../directory/index.js';
import type { Config } from '../config/index.js';
import type { Directory } from '../directory/index.js';
import { failoverStore, fileLeases, proxiesInflight, redisLeases, type FailoverResult, type FailoverStoreOptions, type PhaseEvent, type ReplayFound } from '../failover/index.js';
import { actorFor, globalsOf, onDirectory } from './command.js';
import type { GlobalOptions } from './context.js';
import { EXIT, SilentExit, UsageError, type CliIo } from './io.js';
import { registerReplay } from './replay.js';

interface FailoverFlags {
  to?: string;
  crash?: boolean;
  force?: boolean;
  json?: boolean;
  yes?: boolean;
}

export const EXIT_FOR: Record<FailoverResult['outcome'], number> = {
  done: EXIT.ok, attention: EXIT.refused, refused: EXIT.refused, aborted: EXIT.refused, interrupted: EXIT.refused,
  unreachable: EXIT.tempfail,
};

/** Runs `replay --store S --since T --json` through the real command and reads its summary. */
function replayThroughCli(globals: GlobalOptions, io: CliIo) {
  return async (store: string, since: Date): Promise<ReplayFound> => {
    let out = '';
    const errors: string[] = [];
    const sub = new Command('storeroute').exitOverride()
      .option('--config <file>').option('--redis <url>').option('--actor <name>')
      .configureOutput({ writeOut: (s) => { out += s; }, writeErr: (s) => void errors.push(s) });
    registerReplay(sub, { stdout: (s) => { out += s; }, stderr: (s) => void errors.push(s), stdin: io.stdin, env: io.env });
    const g = [...(globals.config ? ['--config', globals.config] : []), ...(globals.redis ? ['--redis', globals.redis] : []),
      ...(globals.actor ? ['--actor', globals.actor] : [])];
    let failure: unknown = null;
    await sub.parseAsync([...g, 'replay', '--store', store, '--since', since.toISOString(), '--json'], { from: 'user' })
      .catch((err: unknown) => { failure = err; });
    const parsed = JSON.parse(out || '{}') as Partial<ReplayFound> & { errors?: Array<{ message: string }> };
    // Instances that could not replay: their journals were not looked at, so nothing is verified.
    if (parsed.errors?.length) {
      throw new Error(`${parsed.errors.length} instance(s) did not replay: ${parsed.errors.map((e) => e.message).join('; ')}`);
    }
    if (typeof parsed.selected !== 'number') {
      const why = [...(parsed.errors ?? []).map((e) => e.message), ...errors.map((e) => e.trim())].filter(Boolean).join('; ');
      throw new Error(why || (failure instanceof Error ? failure.message : 'replay gave no summary'));
    }
    return { selected: parsed.selected, delivered: parsed.delivered ?? 0, alreadyPresent: parsed.alreadyPresent ?? 0,
      failed: parsed.failed ?? 0, refused: parsed.refused ?? 0 };
  };
}

/** --crash: the backlog lost with the old master beside what replay recovered. */
export function lostLagLine(result: FailoverResult): string {
  const l = result.lostLag;
  if (!l) return '';
  return `lost with ${l.slot}: ${l.pendingBytes ?? 'unknown'} bytes of replication log pending at its last report`
    + `${l.reportAgeMs !== null ? ` (${Math.round(l.reportAgeMs / 1000)} s before the failover)` : ' (no report)'}`
    + `${l.users.length ? ` for ${l.users.join(', ')}` : ''}; replay recovered ${result.replay?.delivered ?? 'nothing (not run)'}`;
}

export function eventLine(e: PhaseEvent): string {
  if (e.status === 'start') return '';
  const mark = { ok: 'ok', failed: 'FAILED', skipped: 'skipped', start: '' }[e.status];
  return `${e.phase.padEnd(11)} ${mark.padEnd(7)} ${`${e.ms} ms`.padStart(8)}  ${e.detail}\n`;
}

/** Asks once on a terminal; without one, refuses to guess (scripts pass --yes). */
export async function confirm(io: CliIo, question: string): Promise<boolean> {
  if (io.stdin.isTTY !== true) throw new UsageError('not a terminal: pass --yes to run without asking');
  io.stderr(`${question} [y/N] `);
  for await (const chunk of io.stdin) {
    const answer = String(chunk).trim().toLowerCase();
    return answer === 'y' || answer === 'yes';
  }
  return false;
}

/**
 * What every failover run of one CLI invocation shares: the leases (Redis or files next to the
 * embedded directory), the verify replay through the real `replay` command, Ctrl-C as an abort
 * signal, and the common options of `failoverStore`.
 */
export function failoverTools(io: CliIo, cmd: Command, directory: Directory, config: Config) {
  const globals = globalsOf(cmd);
  const logger = pino({ level: 'warn', base: { cmd: 'storeroute-failover' } }, pino.destination({ dest: 2, sync: true }));
  const redis = config.directory.backend === 'redis'
    ? createRedisClient(config.directory.redis, { logger, metrics: new Registry() }, { role: 'failover-cli' }) : null;
  const leases = redis ? redisLeases(redis, config.directory.redis.keyPrefix) : fileLeases(dirname(resolve(config.directory.embedded.file)));
  const inflight = redis && config.admin.token
    ? proxiesInflight({ redis, keyPrefix: config.directory.redis.keyPrefix, adminToken: config.admin.token,
      staleAfterMs: 3 * config.admin.heartbeatMs, pollMs: 20 })
    : undefined;
  const abort = new AbortController();
  const onSigint = () => {
    io.stderr('\ninterrupt: stopping after this step and rolling back\n');
    abort.abort();
  };
  process.on('SIGINT', onSigint);
  return {
    signal: abort.signal,
    common: {
      directory, settings: config.failover, agent: config.agent, agentToken: config.agent.token, leases,
      ...(inflight ? { inflight } : {}),
      replay: replayThroughCli(globals, io), actor: actorFor(io, cmd), signal: abort.signal,
    } satisfies Omit<FailoverStoreOptions, 'store'>,
    close() {
      process.off('SIGINT', onSigint);
      redis?.disconnect();
    },
  };
}

export function registerFailover(program: Command, io: CliIo): void {
  program.command('failover')
    .description('fail a store over to another slot in one step: preflight, hold, drain, switch, hooks, release, verify')
    .argument('<store>', 'store name')
    .option('--to <slot>', 'target slot (default: the store\'s one other slot that is up)')
    .option('--crash', 'the current master is gone: no drain, mark its slot down, switch, then replay the journal window')
    .addOption(new Option('--force', 'go on although the target slot is not up, the target machine\'s agent is not reporting, '
      + 'or the store is not active (a failover left half done). Never overrides the lease, the epoch check or the drain'))
    .option('--json', 'one JSON event per line, then the result')
    .option('--yes', 'do not ask')
    .action((store: string, flags: FailoverFlags, cmd: Command) => onDirectory(io, cmd, async (directory, config) => {
      const snap = await directory.snapshot();
      const s = snap.stores[store];
      if (!flags.yes && s) {
        const target = flags.to ?? '(its other slot that is up)';
        const ok = await confirm(io, `${flags.crash ? 'CRASH ' : ''}failover of ${store}: ${s.currentMaster} → ${target}, epoch ${s.epoch}. Go on?`);
        if (!ok) throw new UsageError('cancelled');
      }
      const tools = failoverTools(io, cmd, directory, config);
      let result: FailoverResult;
      try {
        result = await failoverStore({
          ...tools.common, store, ...(flags.to !== undefined ? { to: flags.to } : {}), crash: flags.crash === true, force: flags.force === true,
          onEvent: (e) => (flags.json ? io.stdout(JSON.stringify({ event: 'phase', ...e }) + '\n') : io.stdout(eventLine(e))),
        });
      } finally {
        tools.close();
      }
      if (flags.json) io.stdout(JSON.stringify({ event: 'result', ...result }) + '\n');
      else {
        if (result.lostLag) io.stdout(`${lostLagLine(result)}\n`);
        io.stdout(`${result.outcome}: ${result.detail} (${(result.ms / 1000).toFixed(1)} s)\n`);
      }
      const code = EXIT_FOR[result.outcome];
      if (code !== EXIT.ok) throw new SilentExit(code);
    }));
}
