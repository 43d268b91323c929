/**
 * `storeroute machine evacuate MACHINE` and `storeroute machine restore MACHINE`: a machine's
 * stores failed over (or back) with the one-store failover of `storeroute failover`, a few at a
 * time (src/failover/machine.ts says how many and why). Shows the plan and asks once; `--dry-run`
 * stops after the plan. While it runs: a progress line on a terminal, a line per finished store
 * otherwise, then a summary table.
 */
import { Command, Option } from 'commander';
import type { Config } from '../config/index.js';
import type { Directory } from '../directory/index.js';
import {
  failoverStore, planEvacuate, planRestore, readAgents, runPlan, scheduleOf, PlanError,
  type FailoverResult, type MachinePlan, type MachineProgress,
} from '../failover/index.js';
import { onDirectory, positiveInt } from './command.js';
import { confirm, EXIT_FOR, failoverTools, lostLagLine } from './failover.js';
import { EXIT, SilentExit, UsageError, type CliIo } from './io.js';
import { formatTable } from './table.js';

interface MachineFlags {
  parallel?: number;
  crash?: boolean;
  force?: boolean;
  dryRun?: boolean;
  json?: boolean;
  yes?: boolean;
}

function planText(plan: MachinePlan, parallel: number | undefined): string {
  const s = scheduleOf(plan, parallel);
  const verb = plan.kind === 'evacuate' ? 'evacuate' : 'restore';
  let out = `${verb} ${plan.machine}: ${plan.moves.length} store(s) to move`;
  if (plan.moves.length > 0) {
    out += s.perMachine !== null
      ? `, one at a time per receiving machine (${s.parallel} at once)\n`
      : `, ${s.parallel} at once (--parallel)\n`;
    out += formatTable(['store', 'from', 'to'], plan.moves.map((m) => [m.store, `${m.from} (${m.fromMachine})`, `${m.to} (${m.toMachine})`]));
  } else out += '\n';
  for (const k of plan.skipped) out += `skipped ${k.store}: ${k.why}\n`;
  const machines = Object.keys(plan.mastersBefore);
  out += `masters per machine: ${machines.map((m) => `${m} ${plan.mastersBefore[m]} → ${plan.mastersAfter[m]}`).join(', ')}\n`;
  return out;
}

function progressLine(kind: string, machine: string, p: MachineProgress): string {
  return `\r\x1b[K${kind} ${machine}: ${p.done}/${p.total} done, ${p.running.length} running${p.running.length ? ` (${p.running.join(', ')})` : ''}, `
    + `${p.failed} not done, ${(p.elapsedMs / 1000).toFixed(1)} s`;
}

function storeLine(r: FailoverResult): string {
  return `${r.store}: ${r.outcome} ${r.from ?? '?'} → ${r.to ?? '?'} in ${(r.ms / 1000).toFixed(1)} s: ${r.detail}\n`
    + (r.lostLag ? `  ${lostLagLine(r)}\n` : '');
}

/** 75 if anything was unreachable (retry later), 1 if any store did not end done, else 0. */
function exitOf(plan: MachinePlan, results: FailoverResult[], notStarted: number): number {
  if (results.some((r) => EXIT_FOR[r.outcome] === EXIT.tempfail)) return EXIT.tempfail;
  if (plan.skipped.length > 0 || notStarted > 0 || results.some((r) => r.outcome !== 'done')) return EXIT.refused;
  return EXIT.ok;
}

async function runMachine(io: CliIo, cmd: Command, directory: Directory, config: Config, machine: string, kind: 'evacuate' | 'restore', flags: MachineFlags) {
  const snap = await directory.snapshot();
  let plan: MachinePlan;
  try {
    plan = kind === 'evacuate' ? planEvacuate(snap, machine)
      : planRestore(snap, machine, await readAgents(directory, config.agent));
  } catch (err) {
    if (err instanceof PlanError) throw new UsageError(err.message);
    throw err;
  }
  const schedule = scheduleOf(plan, flags.parallel);
  if (flags.json) io.stdout(JSON.stringify({ event: 'plan', ...plan, parallel: schedule.parallel, perMachine: schedule.perMachine, crash: flags.crash === true }) + '\n');
  else io.stdout(planText(plan, flags.parallel));
  if (flags.dryRun) return;
  if (plan.moves.length === 0) {
    if (!flags.json) io.stdout(plan.skipped.length ? 'nothing to move\n' : `nothing to do: no store to ${kind} on ${machine}\n`);
    else io.stdout(JSON.stringify({ event: 'result', kind, machine, outcome: plan.skipped.length ? 'partial' : 'done', results: [], skipped: plan.skipped, notStarted: [], ms: 0 }) + '\n');
    if (plan.skipped.length) throw new SilentExit(EXIT.refused);
    return;
  }
  if (!flags.yes) {
    const ok = await confirm(io, `${flags.crash ? 'CRASH ' : ''}${kind} ${machine}: ${plan.moves.length} store(s) as above. Go on?`);
    if (!ok) throw new UsageError('cancelled');
  }

  const tools = failoverTools(io, cmd, directory, config);
  const interactive = process.stderr.isTTY === true && !flags.json;
  let out: Awaited<ReturnType<typeof runPlan>>;
  try {
    out = await runPlan(plan, {
      ...(flags.parallel !== undefined ? { parallel: flags.parallel } : {}),
      signal: tools.signal,
      failover: (m) => failoverStore({
        ...tools.common, store: m.store, to: m.to, crash: flags.crash === true, force: flags.force === true,
        ...(flags.json ? { onEvent: (e) => io.stdout(JSON.stringify({ event: 'phase', store: m.store, ...e }) + '\n') } : {}),
      }),
      onProgress: (p, finished) => {
        if (flags.json) {
          if (finished) io.stdout(JSON.stringify({ event: 'store', ...finished }) + '\n');
          return;
        }
        if (finished) io.stdout(`${interactive ? '\r\x1b[K' : ''}${storeLine(finished)}`);
        if (interactive) io.stderr(progressLine(kind, machine, p));
      },
    });
  } finally {
    tools.close();
    if (interactive) io.stderr('\r\x1b[K');
  }

  const code = exitOf(plan, out.results, out.notStarted.length);
  const outcome = code === EXIT.ok ? 'done' : 'partial';
  if (flags.json) {
    io.stdout(JSON.stringify({ event: 'result', kind, machine, outcome, results: out.results, skipped: plan.skipped,
      notStarted: out.notStarted.map((m) => m.store), ms: out.ms }) + '\n');
  } else {
    io.stdout('\n' + formatTable(['store', 'from', 'to', 'outcome', 'time', 'detail'], [
      ...out.results.map((r) => [r.store, r.from, r.to, r.outcome, `${(r.ms / 1000).toFixed(1)} s`, r.detail]),
      ...out.notStarted.map((m) => [m.store, m.from, m.to, 'not started', '', 'interrupted before it began']),
      ...plan.skipped.map((k) => [k.store, '', '', 'skipped', '', k.why]),
    ]));
    const done = out.results.filter((r) => r.outcome === 'done').length;
    io.stdout(`${kind} ${machine}: ${done} of ${plan.moves.length + plan.skipped.length} store(s) done in ${(out.ms / 1000).toFixed(1)} s`
      + `${code === EXIT.ok ? '' : '; the others need a look (above)'}\n`);
  }
  if (code !== EXIT.ok) throw new SilentExit(code);
}

export function registerMachine(program: Command, io: CliIo): void {
  const machine = program.command('machine').description('fail over every store of a machine, or fail them back');
  const parallel = () => new Option('--parallel <n>', 'stores failed over at once (default: one at a time per receiving machine, '
    + 'so no machine takes two stores\' users at the same moment)').argParser(positiveInt);

  machine.command('evacuate')
    .description('fail over every store whose current master is on MACHINE to its other slot (controlled; --crash when the machine is dead)')
    .argument('<machine>', 'machine name, as in the directory')
    .addOption(parallel())
    .option('--crash', 'the machine is dead: each store fails over as `failover --crash` (no drain, slot marked down, replay)')
    .option('--force', 'as `failover --force`, for every store')
    .option('--dry-run', 'print the plan (which store goes where, masters per machine after) and change nothing')
    .option('--json', 'the plan, one JSON event per phase and per store, then the result')
    .option('--yes', 'do not ask')
    .action((name: string, flags: MachineFlags, cmd: Command) =>
      onDirectory(io, cmd, (directory, config) => runMachine(io, cmd, directory, config, name, 'evacuate', flags)));

  machine.command('restore')
    .description('fail back every store whose preferred master is on MACHINE and that runs backwards, where its replication is caught-up')
    .argument('<machine>', 'machine name, as in the directory')
    .addOption(parallel())
    .option('--dry-run', 'print the plan and the stores skipped with why, and change nothing')
    .option('--json', 'the plan, one JSON event per phase and per store, then the result')
    .option('--yes', 'do not ask')
    .action((name: string, flags: MachineFlags, cmd: Command) =>
      onDirectory(io, cmd, (directory, config) => runMachine(io, cmd, directory, config, name, 'restore', flags)));
}
