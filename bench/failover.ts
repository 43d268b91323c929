/**
 * bench/failover — failing over on the real stack (issue #14), each figure beside the same steps
 * done by hand with the primitive commands in the same run:
 *
 *   1. one store   `storeroute failover S1 --to SLOT --yes --json`, replication caught up (the rolling
 *                  sync_client keeping up), while LMTP flows straight into the proxy for the store's
 *                  user (one message every --pace ms, a 4xx retried after --pace ms, as postfix
 *                  would, only sooner). Wall time from the command's start to its `release` event
 *                  (store `active` on the new master), and to its exit (verify replay included);
 *                  time from its `switch` event to the first 250 for the store's user after it.
 *                  Reference: the README's "By hand" as a script, each command its own
 *                  `node dist/cli/index.js` process: store show (epoch), store set-state
 *                  failing-over, the same failover.holdMs wait, status --json polled until the
 *                  store is caught-up in a report measured after the hold, store failover
 *                  --expect-epoch, store set-state active, replay --store (same window as verify).
 *                  Each run does one of each, alternating which goes m1 → m2 and which comes back.
 *                  Target: p50 to active ≤ 3 s (FastMail: 10–30 s a store).
 *   2. a machine   `storeroute machine evacuate m1` with --stores masters on m1 (2 × --stores Cyrus
 *                  slots: the directory allows a slot in one store only), by default parallelism
 *                  and with --parallel <stores>; then `machine restore m1`. Reference: the same
 *                  by-hand script for each store, one after another (a shell loop), both ways
 *                  (in the first --hand-runs runs only: ~10 s a store).
 *                  Target: evacuate ≤ 15 s total.
 *
 *   npm run build && npx tsx bench/failover.ts [--runs 3] [--stores 8] [--interval MS] [--hold MS] [--pace 20]
 *                                              [--no-machine] [--hand-runs 1]
 *
 * --interval is both agents' agent.intervalMs, --hold the operator's failover.holdMs; both default
 * to the config schema's defaults (5,000 and 2,000 ms; the e2e stack runs 500 and 1,000), as do
 * the rest (pollMs: the by-hand script polls `status` as often). The CLI's own start comes on top of the command's phases; by hand, waiting for a report
 * measured after the hold adds up to one agent interval. It prints the machine, its load and a
 * bare CLI start first: every by-hand step pays that start.
 * The slots use 127.50.x.x (STOREROUTE_BENCH_FAILOVER_NET; the e2e suites use 127.42–127.49);
 * STOREROUTE_E2E_CLI measures another build.
 */
import { existsSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { CLI } from '../test/e2e/stack/storeroute.js';
import { parseConfig } from '../src/config/index.js';
import { DOMAIN, FailoverSite, type Memory, type SiteStore } from './stack/failover-site.js';
import { failoverByHand, LmtpPump, Operator, phaseListener, type ByHandSettings } from './stack/operator.js';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

const RUNS = arg('runs', 3);
const STORES = arg('stores', 8);
/** The config's own defaults unless asked otherwise (the e2e stack runs 500 and 1,000). */
const DEFAULTS = parseConfig({});
const INTERVAL = arg('interval', DEFAULTS.agent.intervalMs);
const HOLD = arg('hold', DEFAULTS.failover.holdMs);
const PACE = arg('pace', 20);
const POLL = DEFAULTS.failover.pollMs;
const REPLAY_WINDOW = DEFAULTS.failover.replayWindowMs;
const MACHINE = !process.argv.includes('--no-machine');
/** The by-hand evacuate and restore take ~10 s a store (8 CLI processes each): once, unless asked. */
const HAND_RUNS = arg('hand-runs', 1);
const NET = process.env.STOREROUTE_BENCH_FAILOVER_NET ?? '127.50';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const s1 = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const mb = (m: Memory) => `${m.processes} processes, PSS ${(m.pssKb / 1024).toFixed(0)} MB (RSS summed ${(m.rssKb / 1024).toFixed(0)} MB)`;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.ceil(s.length / 2) - 1] ?? NaN;
}

/** "p50 (min–max, n)" of a list of ms. */
function summary(xs: number[]): string {
  if (xs.length === 0) return '—';
  return `${s1(median(xs))} (${s1(Math.min(...xs))}–${s1(Math.max(...xs))}, n=${xs.length})`;
}

interface Figures {
  toActive: number[];
  toExit: number[];
  switchToDelivery: number[];
}
const figures = () => ({ toActive: [], toExit: [], switchToDelivery: [] }) as Figures;

/** What the parts share, and what cleanup must stop. */
interface Bench {
  site: FailoverSite;
  op: Operator;
  pump: LmtpPump | null;
  settings: ByHandSettings;
}

async function main(): Promise<void> {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first`);
  console.log(`bench/failover: ${cpus()[0]?.model ?? '?'}, ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}, `
    + `load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}, ${new Date().toISOString()}`);
  console.log(`CLI ${CLI}; ${RUNS} run(s), ${STORES} stores on ${2 * STORES} Cyrus slots, agent.intervalMs ${INTERVAL}, `
    + `failover.holdMs ${HOLD}, pollMs ${POLL}, LMTP every ${PACE} ms during the one-store failovers\n`);

  const site = new FailoverSite({ net: NET, stores: STORES, intervalMs: INTERVAL,
    failover: { holdMs: HOLD } });
  const b: Bench = { site, op: new Operator(''), pump: null, settings: { holdMs: HOLD, pollMs: POLL, replayWindowMs: REPLAY_WINDOW } };
  let cleaning: Promise<void> | null = null;
  const cleanup = () => (cleaning ??= (async () => {
    b.op.killAll();
    await b.pump?.stop().catch(() => undefined);
    await site.stop();
  })());
  const onSignal = (sig: NodeJS.Signals) => {
    console.log(`\n${sig}: stopping everything the bench started`);
    void cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  let ok = false;
  try {
    const t0 = performance.now();
    await site.start();
    await site.settle((s) => s.home);
    const mem = site.memory();
    console.log(`site: ${2 * STORES} Cyrus slots started in ${s1(site.slotStartMs)} (all at once), whole site ready in ${s1(performance.now() - t0)}`);
    console.log(`  Cyrus: ${mb(mem.cyrus)}; rolling sync_clients: ${mb(mem.syncClients)}\n`);
    b.op = new Operator(site.operatorConfig);
    // What every command pays before it does anything: by hand pays it once per primitive.
    const starts: number[] = [];
    for (let i = 0; i < 5; i++) {
      const v = await b.op.ok(['--version']);
      starts.push(v.endedAt - v.startedAt);
    }
    console.log(`one CLI process doing nothing (\`storeroute --version\`): ${summary(starts)}\n`);

    const rows = await oneStore(b);
    const hasMachine = MACHINE && (await b.op.run(['machine', '--help'])).stdout.includes('evacuate');
    if (MACHINE && !hasMachine) console.log('`storeroute machine` is not in this build: part 2 skipped\n');
    if (hasMachine) rows.push(...await aMachine(b));
    printTable(['figure', 'storeroute', 'by hand', 'target', 'met?'], rows);
    ok = true;
  } finally {
    if (!ok && !cleaning) console.log(site.logs());
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await cleanup();
  }
}

/** Part 1: S1 back and forth under LMTP load, the command and the primitives in turn; the table's rows. */
async function oneStore(b: Bench): Promise<string[][]> {
  const { site, op } = b;
  const store = site.stores[0] as SiteStore;
  const sr = figures();
  const hand = figures();
  const phases = new Map<string, number[]>();
  const handSteps = new Map<string, number[]>();
  const pump = new LmtpPump(site.storeroute.lmtpPort, `${store.user}@${DOMAIN}`, PACE);
  b.pump = pump;
  pump.start('bench-failover');
  await pump.waitAfter(performance.now());
  let at = store.home;
  for (let r = 0; r < RUNS; r++) {
    for (const who of r % 2 === 0 ? ['sr', 'hand'] : ['hand', 'sr']) {
      const there = at === store.home ? store.away : store.home;
      // Under load the log is rarely empty at the instant an agent measures: lagging (the rolling client keeps up) counts.
      await site.settle((x) => (x === store ? at : x.home), { underLoad: true });
      let line: string;
      if (who === 'sr') {
        const l = phaseListener();
        const run = await op.run(['failover', store.name, '--to', there.name, '--yes', '--json'], l.onLine);
        if (run.code !== 0 || l.times.result?.outcome !== 'done') throw new Error(`failover exited ${run.code}\n${run.stdout}${run.stderr}`);
        const switchAt = l.times.okAt.get('switch') as number;
        const d = await pump.waitAfter(switchAt);
        sr.toActive.push((l.times.okAt.get('release') as number) - run.startedAt);
        sr.toExit.push(run.endedAt - run.startedAt);
        sr.switchToDelivery.push(d.at - switchAt);
        for (const [p, ms] of l.times.ms) phases.set(p, [...(phases.get(p) ?? []), ms]);
        await mustHold(there, store.user, d.messageId);
        const startUp = (l.times.firstAt ?? NaN) - run.startedAt;
        phases.set('(start-up)', [...(phases.get('(start-up)') ?? []), Math.round(startUp)]);
        line = `storeroute ${lastOf(sr)} (start-up ${Math.round(startUp)}, ${[...l.times.ms].map(([p, ms]) => `${p} ${ms}`).join(', ')} ms)`;
      } else {
        const h = await failoverByHand(op, store.name, there.name, b.settings);
        const d = await pump.waitAfter(h.switchAt);
        hand.toActive.push(h.activeAt - h.startedAt);
        hand.toExit.push(h.doneAt - h.startedAt);
        hand.switchToDelivery.push(d.at - h.switchAt);
        await mustHold(there, store.user, d.messageId);
        for (const [step, ms] of h.steps) handSteps.set(step, [...(handSteps.get(step) ?? []), ms]);
        line = `by hand    ${lastOf(hand)} (${h.steps.map(([step, ms]) => `${step} ${ms}`).join(', ')} ms; ${h.statusPolls} status poll(s); `
          + `replay ${JSON.stringify(pick(h.replay))})`;
      }
      console.log(`run ${r + 1} ${store.name} → ${there.name} ${line}`);
      at = there;
    }
  }
  await pump.stop();
  console.log(`LMTP during the one-store failovers: ${pump.delivered.length} delivered, ${pump.deferred} deferred (4xx, retried), `
    + `${pump.bounced.length} bounced${pump.bounced.length ? `: ${pump.bounced.slice(0, 3).join('; ')}` : ''}`);
  console.log(`storeroute phases, median ms (start-up: process start → its first event): ${[...phases].map(([p, xs]) => `${p} ${median(xs)}`).join(', ')}`);
  console.log(`by-hand steps, median ms (each a CLI process; wait: the hold, then status polls): `
    + `${[...handSteps].map(([p, xs]) => `${p} ${median(xs)}`).join(', ')}\n`);
  if (pump.bounced.length > 0) throw new Error('a message bounced during a failover');
  return [
    ['one store: start → active on the new master, p50', summary(sr.toActive), summary(hand.toActive), '≤ 3 s', met(median(sr.toActive) <= 3_000)],
    ['one store: start → exit (verify replay included), p50', summary(sr.toExit), summary(hand.toExit), '—', ''],
    ['one store: switch → first delivery on the new master, p50', summary(sr.switchToDelivery), summary(hand.switchToDelivery), 'measured', ''],
  ];
}

function lastOf(f: Figures): string {
  return `active ${s1(f.toActive.at(-1) as number)}, exit ${s1(f.toExit.at(-1) as number)}, switch → delivery ${s1(f.switchToDelivery.at(-1) as number)}`;
}

/** Part 2: evacuate m1 and restore it, by default parallelism and all at once, then the primitives in a loop; the rows. */
async function aMachine(b: Bench): Promise<string[][]> {
  const { site, op } = b;
  const times = { evacuate: new Map<string, number[]>(), restore: new Map<string, number[]>() };
  const add = (kind: 'evacuate' | 'restore', key: string, ms: number) => times[kind].set(key, [...(times[kind].get(key) ?? []), ms]);
  const variants = [['default', []], [`--parallel ${STORES}`, ['--parallel', String(STORES)]]] as const;
  for (let r = 0; r < RUNS; r++) {
    for (const [label, extra] of variants) {
      for (const kind of ['evacuate', 'restore'] as const) {
        await site.settle(kind === 'evacuate' ? (s) => s.home : (s) => s.away);
        const run = await op.run(['machine', kind, 'm1', ...extra, '--yes', '--json']);
        const result = JSON.parse(run.stdout.trim().split('\n').at(-1) ?? '{}') as { outcome?: string; ms?: number; results?: unknown[] };
        if (run.code !== 0 || result.outcome !== 'done') throw new Error(`machine ${kind} exited ${run.code}\n${run.stdout.slice(-3_000)}${run.stderr}`);
        add(kind, label, run.endedAt - run.startedAt);
        console.log(`run ${r + 1} machine ${kind} m1 (${label}): ${s1(run.endedAt - run.startedAt)} wall, ${s1(result.ms ?? NaN)} by its own clock, `
          + `${result.results?.length ?? 0} stores`);
      }
    }
    for (const kind of r < HAND_RUNS ? ['evacuate', 'restore'] as const : []) {
      await site.settle(kind === 'evacuate' ? (s) => s.home : (s) => s.away);
      const t = performance.now();
      for (const s of site.stores) await failoverByHand(op, s.name, (kind === 'evacuate' ? s.away : s.home).name, b.settings);
      add(kind, 'by hand', performance.now() - t);
      console.log(`run ${r + 1} by hand ${kind} m1 (${STORES} stores, one after another): ${s1(performance.now() - t)}`);
    }
  }
  await site.settle((s) => s.home);
  return [
    ...variants.map(([label]) => [`evacuate m1, ${STORES} masters (${label}), total`, summary(times.evacuate.get(label) ?? []),
      summary(times.evacuate.get('by hand') ?? []), '≤ 15 s', met(median(times.evacuate.get(label) ?? []) <= 15_000)]),
    ...variants.map(([label]) => [`restore m1, ${STORES} stores (${label}), total`, summary(times.restore.get(label) ?? []),
      summary(times.restore.get('by hand') ?? []), '—', '']),
  ];
}

const met = (yes: boolean) => (yes ? 'met' : 'NOT met');

function pick(replay: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(['selected', 'alreadyPresent', 'skippedAlreadyReplayed', 'delivered', 'refused', 'failed'].map((k) => [k, replay[k]]));
}

/** The first delivery after the switch must be on the new master (read back over IMAP). */
async function mustHold(slot: SiteStore['home'], user: string, messageId: string): Promise<void> {
  for (let i = 0; i < 50; i++) {
    if ((await slot.inbox(user)).some((m) => m.messageId.includes(messageId))) return;
    await sleep(100);
  }
  throw new Error(`${messageId} (the first delivery after the switch) is not on ${slot.name}`);
}

function printTable(head: string[], rows: string[][]): void {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i] as number)).join(' | ')} |`;
  console.log([line(head), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n'));
}

await main();
