/**
 * Replication checker speed on a real Cyrus master/replica pair (issue #15): 1,000 users × 5
 * mailboxes × 20 messages, plus one user with 10,000 messages in INBOX, seeded on the master with
 * MULTIAPPEND and copied by rolling replication. Figures beside references measured in the same run:
 *
 *   quick, every user   the checker beside bare imapflow loops on one admin connection per slot:
 *                       (a) the issue's reference: per user a LIST, then one GETMETADATA per mailbox;
 *                       (b) the checker's own commands: one LIST "user.*", then one GETMETADATA per user.
 *   deep, the big user  the checker (--deep=all) beside a bare imapflow FETCH of the same fields
 *                       (UID, FLAGS, RFC822.SIZE, INTERNALDATE, Message-ID) from both slots.
 *
 *   npx tsx bench/check.ts [--users N] [--big N] [--rounds N] [--keep | --dir DIR] [--seed-only]
 *
 * Targets: quick check of all users ≤ 10 s and ≥ 0.7 × loop (a); peak RSS ≤ 150 MB. The slots live
 * on tmpfs when /dev/shm exists (seeding is fsync-bound on disk; the check itself only reads).
 * Each contender runs in its own plain-node child process per round, so each peak RSS is its own.
 * Seeding takes ~30 s: --keep keeps the seeded pair, --dir DIR measures it again.
 */
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { ImapFlow } from 'imapflow';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { CyrusSlot } from '../test/e2e/stack/cyrus.js';
import { parseConfig } from '../src/config/index.js';
import { createDirectory, type Mutation } from '../src/directory/index.js';
import { checkReplication } from '../src/check/index.js';

const PW = 'bench-check-admin';
const NET = process.env.STOREROUTE_BENCH_CHECK_NET ?? '127.49';
const FOLDERS = ['', '.Sent', '.Drafts', '.Archive', '.Lists'];
const PER_MAILBOX = 20;
const SYNCCRCS = '/shared/vendor/cmu/cyrus-imapd/synccrcs';
const UNIQUEID = '/shared/vendor/cmu/cyrus-imapd/uniqueid';
type Exec = { exec(c: string, a: unknown[], o?: { untagged?: Record<string, (u: { attributes?: unknown[] }) => void> }): Promise<{ next(): void }> };

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

function client(host: string, as?: string): ImapFlow {
  return new ImapFlow({ host, port: 143, secure: false, logger: false, disableAutoIdle: true,
    auth: { user: 'cyrus', pass: PW, ...(as ? { authzid: as } : {}), loginMethod: 'AUTH=PLAIN' },
    connectionTimeout: 10_000, greetingTimeout: 10_000, socketTimeout: 120_000, disableCompression: true });
}

async function run(c: ImapFlow, command: string, args: unknown[], untagged?: Record<string, (u: { attributes?: unknown[] }) => void>) {
  (await (c as unknown as Exec).exec(command, args, untagged ? { untagged } : {})).next();
}

function message(user: string, i: number): Buffer {
  return Buffer.from(`From: <sender@bench.test>\r\nTo: <${user}@bench.test>\r\nSubject: bench ${i}\r\n`
    + `Message-ID: <${user}.${i}@bench.test>\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n\r\nbody of message ${i}\r\n`);
}

/** MULTIAPPEND: `count` messages into one mailbox in one command (one mailbox lock on the server). */
async function append(c: ImapFlow, mailbox: string, user: string, from: number, count: number): Promise<void> {
  const literals = Array.from({ length: count }, (_, i) => ({ type: 'LITERAL', value: message(user, from + i) }));
  await run(c, 'APPEND', [mailbox, ...literals]);
}

async function inParallel<T>(items: T[], workers: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: workers }, async () => {
    while (next < items.length) await fn(items[next++]!);
  }));
}

const users = (n: number) => Array.from({ length: n }, (_, i) => `u${String(i).padStart(4, '0')}`);

async function seed(master: CyrusSlot, n: number, big: number): Promise<void> {
  const admins = [client(master.ip), client(master.ip)];
  await Promise.all(admins.map((a) => a.connect()));
  // One user per worker at a time: a folder can only be created once the user's INBOX exists.
  const todo = [...users(n), 'big'];
  await Promise.all(admins.map(async (a) => {
    for (let u = todo.shift(); u !== undefined; u = todo.shift()) {
      for (const f of u === 'big' ? [''] : FOLDERS) await run(a, 'CREATE', [`user.${u}${f}`]);
    }
  }));
  await Promise.all(admins.map((a) => a.logout()));
  await inParallel(users(n), 2, async (u) => {
    const c = client(master.ip, u);
    await c.connect();
    for (const f of FOLDERS) await append(c, `user.${u}${f}`, u, 0, PER_MAILBOX);
    await c.logout();
  });
  const c = client(master.ip, 'big');
  await c.connect();
  for (let from = 0; from < big; from += 500) await append(c, 'user.big', 'big', from, Math.min(500, big - from));
  await c.logout();
}

// ---------------------------------------------------------------- measuring (child processes)

interface Plan { dir: string; slots: Array<{ name: string; ip: string }>; users: string[] }

/** One admin connection per slot, both slots at once; (a) the issue's commands, (b) the checker's. */
async function bareQuick(plan: Plan, checkerCommands: boolean): Promise<number> {
  const t0 = performance.now();
  await Promise.all(plan.slots.map(async (s) => {
    const c = client(s.ip);
    await c.connect();
    if (checkerCommands) {
      const names = new Map<string, string[]>();
      await run(c, 'LIST', ['', 'user.*'], { LIST: (x) => {
        const name = String((x.attributes?.[2] as { value: unknown }).value);
        const owner = name.split('.')[1]!;
        names.set(owner, [...(names.get(owner) ?? []), name]);
      } });
      for (const u of plan.users) await run(c, 'GETMETADATA', [names.get(u) ?? [], [SYNCCRCS, UNIQUEID]], { METADATA: () => undefined });
    } else {
      for (const u of plan.users) {
        const names: string[] = [];
        await run(c, 'LIST', ['', [`user.${u}`, `user.${u}.*`]], { LIST: (x) => { names.push(String((x.attributes?.[2] as { value: unknown }).value)); } });
        for (const name of names) await run(c, 'GETMETADATA', [name, [SYNCCRCS]], { METADATA: () => undefined });
      }
    }
    await c.logout();
  }));
  return (performance.now() - t0) / 1000;
}

async function bareDeep(plan: Plan): Promise<number> {
  const t0 = performance.now();
  await Promise.all(plan.slots.map(async (s) => {
    const c = client(s.ip, 'big');
    await c.connect();
    const lock = await c.getMailboxLock('INBOX', { readOnly: true });
    const out = [];
    for await (const m of c.fetch('1:*', { uid: true, flags: true, size: true, internalDate: true, headers: ['message-id'] }, { uid: true })) out.push(m);
    lock.release();
    await c.logout();
  }));
  return (performance.now() - t0) / 1000;
}

/** A fresh process per contender and round, so each one's peak RSS is its own. */
async function measure(plan: Plan, what: 'bare' | 'checker' | 'warm-up'): Promise<void> {
  const rssBaseline = process.memoryUsage().rss;
  let rssPeak = rssBaseline;
  const sampler = setInterval(() => { rssPeak = Math.max(rssPeak, process.memoryUsage().rss); }, 10);
  const out: Record<string, number | string> = {};
  if (what === 'bare') {
    out.issueLoop = await bareQuick(plan, false);
    out.checkerLoop = await bareQuick(plan, true);
    out.bareDeep = await bareDeep(plan);
  } else {
    const config = parseConfig({ directory: { embedded: { file: join(plan.dir, 'directory.json') } }, replay: { imap: { password: PW, timeoutMs: 30_000 } } });
    const obs = { logger: pino({ level: 'error' }), metrics: new Registry() };
    const directory = await createDirectory(config.directory, obs);
    const checker = async (concurrency: number, scope: { all: true } | { users: string[] }, mode: 'quick' | 'deep-all' = 'quick') => {
      const t0 = performance.now();
      const r = await checkReplication({ directory, imap: config.replay.imap, scope, mode, concurrency, logger: obs.logger });
      if (r.figures.exitCode !== 0) throw new Error(`the checker did not find the pair identical: ${JSON.stringify(r.figures)}`);
      return (performance.now() - t0) / 1000;
    };
    if (what === 'warm-up') {
      const probe = client(plan.slots[0]!.ip);
      await probe.connect();
      out.server = `${probe.serverInfo?.name ?? 'Cyrus'} ${probe.serverInfo?.version ?? '?'}`;
      await probe.logout();
      await checker(4, { all: true });
    } else {
      out.checker4 = await checker(4, { all: true });
      out.checker1 = await checker(1, { all: true });
      out.checkerDeep = await checker(1, { users: ['big'] }, 'deep-all');
    }
    await directory.close();
  }
  clearInterval(sampler);
  console.log(JSON.stringify({ ...out, rssBaselineMB: rssBaseline / 2 ** 20, rssPeakMB: rssPeak / 2 ** 20, maxRssMB: process.resourceUsage().maxRSS / 1024 }));
}

// ---------------------------------------------------------------- orchestration (parent)

async function main(): Promise<void> {
  const n = arg('--users', 1000);
  const big = arg('--big', 10_000);
  const rounds = arg('--rounds', 3);
  const base = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
  // --dir DIR: a pair seeded by an earlier run with --keep (seeding takes most of the run).
  const reuse = process.argv.includes('--dir') ? process.argv[process.argv.indexOf('--dir') + 1]! : null;
  const keep = process.argv.includes('--keep');
  const dir = reuse ?? mkdtempSync(join(base, 'sr-bench-check-'));
  chmodSync(dir, 0o755);
  console.log(`bench/check — ${cpus()[0]?.model ?? '?'}, ${cpus().length} cpus, node ${process.version}, load ${loadavg().map((l) => l.toFixed(2)).join(' ')}; slots in ${base}`);
  const master = new CyrusSlot({ name: 'b11', machine: 'bm1', ip: `${NET}.1.1`, baseDir: dir, adminPassword: PW });
  const replica = new CyrusSlot({ name: 'b21', machine: 'bm2', ip: `${NET}.2.1`, baseDir: dir, adminPassword: PW });
  try {
    await Promise.all([master.start(), replica.start()]);
    await master.startReplication(replica);
    if (!reuse) {
      let t0 = performance.now();
      await seed(master, n, big);
      const seedS = (performance.now() - t0) / 1000;
      t0 = performance.now();
      const syncDir = join(master.dir, 'conf', 'sync');
      while (readdirSync(syncDir).length > 0) await new Promise((r) => setTimeout(r, 200));
      console.log(`seeded ${n} users × ${FOLDERS.length} mailboxes × ${PER_MAILBOX} messages + 1 user × ${big} in ${seedS.toFixed(1)} s; `
        + `replication caught up ${((performance.now() - t0) / 1000).toFixed(1)} s later`);
    } else {
      console.log(`reusing the pair seeded in ${dir}`);
    }
    if (process.argv.includes('--seed-only')) return;

    const obs = { logger: pino({ level: 'error' }), metrics: new Registry() };
    const directory = await createDirectory(parseConfig({ directory: { embedded: { file: join(dir, 'directory.json') } } }).directory, obs);
    const mutations: Mutation[] = [
      { op: 'createSlot', input: { name: 'b11', machine: 'bm1', ip: master.ip } },
      { op: 'createSlot', input: { name: 'b21', machine: 'bm2', ip: replica.ip } },
      { op: 'createStore', input: { name: 'B', slots: ['b11', 'b21'], preferredMaster: 'b11' } },
      ...[...users(n), 'big'].map((u): Mutation => ({ op: 'createUser', input: { name: u, store: 'B' } })),
    ];
    if (Object.keys((await directory.snapshot()).users).length === 0) await directory.commit({ base: await directory.snapshot(), mutations }, 'bench');
    await directory.close();

    const plan: Plan = { dir, slots: [{ name: 'b11', ip: master.ip }, { name: 'b21', ip: replica.ip }], users: users(n) };
    writeFileSync(join(dir, 'plan.json'), JSON.stringify(plan));
    // The measuring children run as plain JavaScript, as `node dist/cli/index.js` would: under tsx
    // the TypeScript loader alone holds ~90 MB, which would drown the checker's own footprint.
    const bundle = join(import.meta.dirname, '..', 'node_modules', '.cache', 'storeroute-bench', 'check-measure.mjs');
    const { build } = await import('esbuild');
    await build({ entryPoints: [import.meta.filename], bundle: true, platform: 'node', format: 'esm', packages: 'external', outfile: bundle, logLevel: 'error' });
    const child = (what: string) => new Promise<Record<string, number> & { server?: string }>((resolve, reject) => {
      const p = spawn(process.execPath, [bundle, '--measure', what, join(dir, 'plan.json')], { stdio: ['ignore', 'pipe', 'inherit'] });
      let text = '';
      p.stdout.on('data', (d: Buffer) => { text += d.toString(); });
      p.on('error', reject);
      p.on('close', (code) => (code === 0 ? resolve(JSON.parse(text.trim().split('\n').pop()!)) : reject(new Error(`${what} child exited ${code}: ${text}`))));
    });
    // Warm-up: every cache on both slots, and proof that the pair is identical.
    const { server } = await child('warm-up');
    const runs: Array<Record<string, number>> = [];
    // Interleaved rounds: the machine is shared, so each contender sees the same neighbours.
    for (let r = 0; r < rounds; r++) runs.push(await child('bare'), await child('checker'));
    const median = (key: string) => {
      const xs = runs.map((x) => x[key]).filter((x): x is number => typeof x === 'number').sort((a, b) => a - b);
      return xs[Math.floor(xs.length / 2)]!;
    };
    const peak = (key: string) => Math.max(...runs.filter((x) => key in x).map((x) => x.maxRssMB!));
    const total = n + 1;
    const [a, b, c4, c1] = ['issueLoop', 'checkerLoop', 'checker4', 'checker1'].map(median) as [number, number, number, number];
    const line = (label: string, s: number, refs = '') => `  ${label.padEnd(72)} ${s.toFixed(2).padStart(6)} s  ${(total / s).toFixed(0).padStart(5)} users/s${refs}`;
    const vs = (s: number) => `  (${(a / s).toFixed(2)} × loop a, ${(b / s).toFixed(2)} × loop b)`;
    console.log(`${server}; median of ${rounds} interleaved rounds, after a warm-up check; COMPRESS off everywhere\n`
      + `quick check of all ${total} users (${n * FOLDERS.length + 1} mailboxes per slot):\n`
      + `${line('(a) bare loop: LIST + GETMETADATA per mailbox, 1 conn/slot', a)}\n`
      + `${line('(b) bare loop: one LIST "user.*", then GETMETADATA per user, 1 conn/slot', b)}\n`
      + `${line('storeroute check replication --all (concurrency 4, the default)', c4, vs(c4))}\n`
      + `${line('storeroute check replication --all --concurrency 1', c1, vs(c1))}\n`
      + `deep, 1 user × ${big} messages (both slots): bare imapflow FETCH of the same fields ${median('bareDeep').toFixed(2)} s; `
      + `checker --deep=all ${median('checkerDeep').toFixed(2)} s (${(median('checkerDeep') / median('bareDeep')).toFixed(2)} × the bare FETCH)\n`
      + `peak RSS (maxRSS, plain node): checker processes ${peak('checker4').toFixed(0)} MB, bare-loop processes ${peak('issueLoop').toFixed(0)} MB `
      + `(a node process with imapflow loaded: ~75 MB)\n`
      + `targets: quick ≤ 10 s ${c4 <= 10 ? 'met' : 'MISSED'}; ≥ 0.7 × loop (a) ${a / c4 >= 0.7 ? 'met' : 'MISSED'}; RSS ≤ 150 MB ${peak('checker4') <= 150 ? 'met' : 'MISSED'}`);
  } finally {
    await master.stopReplication();
    await Promise.all([master.stop(), replica.stop()]);
    if (keep || reuse) console.log(`kept the seeded pair: run again with --dir ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv.includes('--measure')) {
  const i = process.argv.indexOf('--measure');
  await measure(JSON.parse(readFileSync(process.argv[i + 2]!, 'utf8')) as Plan, process.argv[i + 1] as 'bare' | 'checker' | 'warm-up');
} else {
  await main();
}
