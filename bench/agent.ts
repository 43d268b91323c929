/**
 * bench/agent — what the slot agent costs on a machine of 64 slots, and how soon `status` sees a
 * drained sync log (issue #13). Two figures, each beside its reference:
 *
 *   1. cost   the real agent (dist/, a child process, run as the README's systemd unit runs it:
 *             `node AGENT_NODE_OPTIONS dist/cli/agent-main.js`; embedded directory holding the
 *             64 slots on its machine, repairs off) measuring 64 made-up slots whose sync logs grow
 *             between rounds (a writer appends `--grow` bytes of records to every slot's `log`
 *             after each round). Per round: the agent's CPU (/proc/<pid>/stat, all its threads)
 *             beside a bare `du -s` of the same 64 sync directories run in the same round (its CPU
 *             from this process's children times, averaged over 5 runs). Peak RSS of the agent
 *             (VmHWM).
 *             Target: agent ≤ 2 × du per round, RSS < 50 MB.
 *   2. latency  from "sync log emptied" (rename to log-run, unlink: what sync_client does) to
 *             `caught-up` in what `status` reads (the directory's readStatus + the classification
 *             status uses, polled every 5 ms), over `--trials` trials, each emptying at a random
 *             point of the agent's interval. Target: p99 ≤ 2 intervals.
 *
 *   npm run build && npx tsx bench/agent.ts [--slots 64] [--rounds 60] [--interval 1000] [--grow 512] [--trials 50] [--warmup 5]
 *
 * Records are "APPEND user.uNNNN" lines like Cyrus's (see src/agent/records.ts), over 1,000 users.
 */
import { execSync, spawn, spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { stringify } from 'yaml';
import { parseConfig } from '../src/config/index.js';
import { createDirectory, type Directory, type DirectorySnapshot } from '../src/directory/index.js';
import { readReplication, replicationOf } from '../src/cli/replication.js';
import { AGENT_NODE_OPTIONS } from '../src/cli/agent.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
/** The built CLI; STOREROUTE_BENCH_CLI measures another build (an older one, for a before/after). */
const CLI = process.env.STOREROUTE_BENCH_CLI ?? join(REPO, 'dist', 'cli', 'index.js');
/**
 * The agent as the README's systemd unit runs it: the lean entry beside the CLI, under the node
 * options it ships with (AGENT_NODE_OPTIONS). A build from before the entry existed runs as
 * `index.js agent`, with no options.
 */
const AGENT_MAIN = join(dirname(CLI), 'agent-main.js');
const AGENT_ARGV = existsSync(AGENT_MAIN) ? [...AGENT_NODE_OPTIONS, AGENT_MAIN] : [CLI, 'agent'];
const CLK_TCK = Number(execSync('getconf CLK_TCK').toString().trim()) || 100;

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

const SLOTS = arg('slots', 64);
const ROUNDS = arg('rounds', 60);
const INTERVAL = arg('interval', 1_000);
const GROW = arg('grow', 512);
const TRIALS = arg('trials', 50);
const DU_RUNS = 5;
/** Rounds left out before measuring: module loading, the first /proc walk, V8 tiering up. */
const WARMUP = arg('warmup', 5);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const name = (i: number) => String(i + 1).padStart(2, '0');

/** CPU seconds (user + system, every thread) of a live process. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // After "pid (comm) ": state is field 3, utime 14 and stime 15 (1-based) → 11 and 12 here.
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

function memKb(pid: number, key: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'latin1'));
  return m ? Number(m[1]) : NaN;
}

/** CPU seconds (user + system) of this process's waited-for children: the du runs below. */
function childrenCpuSeconds(): number {
  const stat = readFileSync('/proc/self/stat', 'latin1');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // cutime and cstime are fields 16 and 17 (1-based) → 13 and 14 here.
  return (Number(fields[13]) + Number(fields[14])) / CLK_TCK;
}

/**
 * CPU seconds of one bare `du -s` of the directories: DU_RUNS runs, their CPU read from this
 * process's children times (/proc/self/stat; clock ticks, hence several runs). Not bash's
 * `times`: run from a detached session it reported ~130 ms for a du that took 4 ms of wall time.
 */
function duOnce(dirs: string[]): number {
  const before = childrenCpuSeconds();
  for (let i = 0; i < DU_RUNS; i++) {
    const r = spawnSync('du', ['-s', ...dirs], { stdio: ['ignore', 'ignore', 'pipe'] });
    if (r.status !== 0) throw new Error(`du -s: ${r.stderr.toString()}`);
  }
  return (childrenCpuSeconds() - before) / DU_RUNS;
}

/** RSS of a bare `node` process idling (the floor any Node agent starts from), same machine and run. */
async function bareNodeRssKb(): Promise<number> {
  const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 5000)'], { stdio: 'ignore' });
  try {
    await sleep(500);
    return memKb(child.pid as number, 'VmRSS');
  } finally {
    child.kill();
  }
}

function records(bytes: number): string {
  let out = '';
  while (out.length < bytes) out += `APPEND user.u${String(Math.floor(Math.random() * 1_000)).padStart(4, '0')}\n`;
  return out;
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

interface Site {
  base: string;
  syncDirs: string[];
  config: string;
  directoryConfig: ReturnType<typeof parseConfig>['directory'];
}

function makeSite(): Site {
  const base = mkdtempSync(join(tmpdir(), 'sr-bench-agent-'));
  const syncDirs: string[] = [];
  const agentSlots: { name: string; imapdConf: string }[] = [];
  const slots: Record<string, { machine: string; ip: string }> = {};
  const stores: Record<string, { slots: string[]; preferredMaster: string }> = {};
  const users: Record<string, string> = {};
  for (let i = 0; i < SLOTS; i++) {
    const root = join(base, 'slots', `s${name(i)}`);
    const configDirectory = join(root, 'conf');
    mkdirSync(join(configDirectory, 'sync'), { recursive: true });
    syncDirs.push(join(configDirectory, 'sync'));
    const conf = join(root, 'imapd.conf');
    writeFileSync(conf, `configdirectory: ${configDirectory}\nsync_log: 1\n`);
    agentSlots.push({ name: `s${name(i)}`, imapdConf: conf });
    slots[`s${name(i)}`] = { machine: 'bench1', ip: `127.0.1.${i + 1}` };
    slots[`r${name(i)}`] = { machine: 'bench2', ip: `127.0.2.${i + 1}` };
    stores[`st${name(i)}`] = { slots: [`s${name(i)}`, `r${name(i)}`], preferredMaster: `s${name(i)}` };
    users[`user${name(i)}`] = `st${name(i)}`;
  }
  const seed = join(base, 'seed.json');
  writeFileSync(seed, JSON.stringify({ slots, stores, users }));
  const directory = { backend: 'embedded' as const, embedded: { file: join(base, 'directory.json'), seed } };
  const config = join(base, 'agent.yaml');
  writeFileSync(config, stringify({
    log: { level: 'info' },
    directory,
    agent: {
      machine: 'bench1', intervalMs: INTERVAL, listen: { host: '127.0.0.1', port: 0 }, slots: agentSlots,
      // Measuring only: a repair's cost is its Cyrus command's, not the agent's.
      repairs: { orphanFiles: false, startRollingClient: false },
    },
  }));
  return { base, syncDirs, config, directoryConfig: parseConfig({ directory: { ...directory, cache: { enabled: false } } }).directory };
}

/** STOREROUTE_BENCH_NODE_ARGS: more node options for the agent (a profile, --trace-gc …), before the shipped ones. */
const nodeArgs = (process.env.STOREROUTE_BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);

async function main(): Promise<void> {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first`);
  console.log(`bench/agent: ${cpus()[0]?.model ?? '?'}, ${cpus().length} cores, node ${process.version}, `
    + `load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  console.log(`agent: node ${[...nodeArgs, ...AGENT_ARGV].join(' ')}`);
  console.log(`${SLOTS} slots, interval ${INTERVAL} ms, ${ROUNDS} rounds growing every log by ${GROW} B per round, ${TRIALS} latency trials\n`);
  const site = makeSite();
  const logFile = join(site.base, 'agent.log');
  const out = openSync(logFile, 'a');
  const agent = spawn(process.execPath, [...nodeArgs, ...AGENT_ARGV, '--config', site.config], { cwd: site.base, stdio: ['ignore', out, out] });
  const pid = agent.pid as number;
  let directory: Directory | null = null;
  try {
    directory = await createDirectory(site.directoryConfig, { logger: pino({ level: 'silent' }), metrics: new Registry() });
    const dir = directory;
    const layout: DirectorySnapshot = await dir.snapshot();
    const agentConfig = parseConfig({ agent: { intervalMs: INTERVAL } }).agent;
    const lastReport = async (): Promise<number> => {
      const doc = (await dir.readStatus('agent')).bench1 as { measuredAt?: number } | undefined;
      return doc?.measuredAt ?? 0;
    };
    /** Resolves at the first report measured after `after` (polled every 20 ms: the bench shares two cores with the agent). */
    const nextReport = async (after: number): Promise<number> => {
      const until = Date.now() + 10 * INTERVAL;
      for (;;) {
        if (agent.exitCode !== null) throw new Error(`the agent exited (${agent.exitCode}): ${readFileSync(logFile, 'utf8').slice(-2_000)}`);
        const at = await lastReport();
        if (at > after) return at;
        if (Date.now() > until) throw new Error('no report from the agent for 10 intervals');
        await sleep(20);
      }
    };

    // ---- 1. cost per round, beside du -s
    let at = await nextReport(0);
    for (let i = 0; i < WARMUP; i++) at = await nextReport(at);
    const perRound: { agent: number; du: number; pendingPerSlot: number }[] = [];
    let cpuBefore = cpuSeconds(pid);
    let pendingPerSlot = 0;
    let rssMax = 0;
    for (let r = 0; r < ROUNDS; r++) {
      for (const d of site.syncDirs) appendFileSync(join(d, 'log'), records(GROW));
      pendingPerSlot += GROW;
      const du = duOnce(site.syncDirs);
      at = await nextReport(at);
      const cpu = cpuSeconds(pid);
      perRound.push({ agent: cpu - cpuBefore, du, pendingPerSlot });
      cpuBefore = cpu;
      rssMax = Math.max(rssMax, memKb(pid, 'VmRSS'));
    }
    const hwm = memKb(pid, 'VmHWM');
    const rssEnd = memKb(pid, 'VmRSS');
    const bareNode = await bareNodeRssKb();
    const ms = (s: number) => `${(s * 1_000).toFixed(2)} ms`;
    const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
    console.log('1. CPU per measuring round (64 slots), agent beside a bare `du -s` of the same sync directories');
    const thirds = [0, 1, 2].map((k) => perRound.slice(Math.floor((k * ROUNDS) / 3), Math.floor(((k + 1) * ROUNDS) / 3)));
    for (const part of thirds) {
      if (part.length === 0) continue;
      const a = sum(part.map((p) => p.agent)) / part.length;
      const d = sum(part.map((p) => p.du)) / part.length;
      console.log(`   logs ${Math.round((part[0] as { pendingPerSlot: number }).pendingPerSlot / 1024)}–${Math.round((part.at(-1) as { pendingPerSlot: number }).pendingPerSlot / 1024)} KB per slot: `
        + `agent ${ms(a)}, du ${ms(d)}  → ${(a / d).toFixed(2)} × du`);
    }
    const agentAvg = sum(perRound.map((p) => p.agent)) / ROUNDS;
    const duAvg = sum(perRound.map((p) => p.du)) / ROUNDS;
    console.log(`   all ${ROUNDS} rounds: agent ${ms(agentAvg)}, du ${ms(duAvg)}  → ${(agentAvg / duAvg).toFixed(2)} × du `
      + `(target ≤ 2 ×): ${agentAvg <= 2 * duAvg ? 'met' : 'NOT met'}`);
    const mb = (kb: number) => `${(kb / 1024).toFixed(1)} MB`;
    console.log(`   agent RSS: peak ${mb(hwm)} (VmHWM, start-up included), highest sampled during the rounds ${mb(rssMax)}, `
      + `at the end ${mb(rssEnd)} (target < 50 MB): ${hwm < 50 * 1024 ? 'met' : 'NOT met'}; a bare \`node\` idling: ${mb(bareNode)}\n`);

    // ---- 2. sync log emptied → caught-up in status
    for (const d of site.syncDirs) rmSync(join(d, 'log'), { force: true });
    const verdictOf = async (store: string) => {
      const view = await readReplication(dir, agentConfig);
      return replicationOf(view, layout).find((v) => v.store === store);
    };
    const until = async (store: string, pred: (state: string) => boolean, what: string): Promise<void> => {
      const deadline = Date.now() + 10 * INTERVAL;
      for (;;) {
        const v = await verdictOf(store);
        if (v && pred(v.state)) return;
        if (Date.now() > deadline) throw new Error(`${store}: no ${what} within 10 intervals (last: ${v?.state})`);
        await sleep(5);
      }
    };
    for (let i = 0; i < SLOTS; i++) await until(`st${name(i)}`, (s) => s === 'caught-up', 'caught-up after the reset');
    const latencies: number[] = [];
    for (let t = 0; t < TRIALS; t++) {
      const i = t % SLOTS;
      const log = join(site.syncDirs[i] as string, 'log');
      appendFileSync(log, records(200));
      await until(`st${name(i)}`, (s) => s !== 'caught-up', 'pending');
      await sleep(Math.random() * INTERVAL);
      renameSync(log, `${log}-run`);
      unlinkSync(`${log}-run`);
      const emptied = Date.now();
      await until(`st${name(i)}`, (s) => s === 'caught-up', 'caught-up');
      latencies.push(Date.now() - emptied);
    }
    latencies.sort((a, b) => a - b);
    const p99 = pct(latencies, 99);
    console.log(`2. sync log emptied → caught-up in status, ${TRIALS} trials (interval ${INTERVAL} ms)`);
    console.log(`   p50 ${pct(latencies, 50)} ms, p90 ${pct(latencies, 90)} ms, p99 ${p99} ms, max ${latencies.at(-1)} ms `
      + `(target p99 ≤ 2 intervals = ${2 * INTERVAL} ms): ${p99 <= 2 * INTERVAL ? 'met' : 'NOT met'}`);
  } finally {
    agent.kill('SIGTERM');
    await new Promise((r) => (agent.exitCode !== null ? r(null) : agent.once('exit', r)));
    await directory?.close();
    // STOREROUTE_BENCH_KEEP=1 keeps the site, with the agent's log (--trace-gc output lands there).
    if (process.env.STOREROUTE_BENCH_KEEP) console.log(`\nkept ${site.base} (agent log: ${logFile})`);
    else rmSync(site.base, { recursive: true, force: true });
  }
}

await main();
