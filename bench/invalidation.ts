/**
 * How fast does every proxy see a directory mutation? README promises "within milliseconds".
 *
 * Redis: N storeroute processes (N = 1, 4, 8; each is `startStoreroute`, what `storeroute serve`
 * runs, with the read cache on) on one redis-server. Each has a poller: one LMTP connection that,
 * from the moment a failover starts, sends `MAIL`/`RCPT`/`RSET` back to back for its own user on
 * the store until that RCPT reaches the new master's backend (storeroute forwards RCPT at RCPT
 * time, so the backend sees each one as it is routed). Latency = that RCPT's arrival at the new
 * master minus the moment the failover was sent, per process; p50/p99/max over every process and
 * failover. Beside it, in the same run: a bare Redis PUBLISH → message round trip.
 *
 * Embedded: one storeroute process on a directory file, the failover made by this process
 * through its own EmbeddedDirectory on the same file (what the CLI does); same measurement.
 *
 *   npx tsx bench/invalidation.ts [--failovers 200] [--procs 1,4,8] [--embedded-failovers 200]
 *
 * Target (issue #12): p99 ≤ 50 ms at N = 8.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { parseConfig, type ConfigInput } from '../src/config/index.js';
import { EmbeddedDirectory, RedisDirectory, createRedisClient, type Directory } from '../src/directory/index.js';
import { startStoreroute } from '../src/main.js';
import { startRedis, uniquePrefix } from '../test/helpers/redis.js';
import { stopChild } from './lmtp.js';

/** Poller i asks for user i: the backend tells the pollers apart by the RCPT address. */
const userOf = (i: number) => `inval${i}@bench.test`;

/** `${slot}|${address}` → when that backend last received an RCPT for that address. */
const arrivals = new Map<string, number>();

/**
 * A minimal LMTP backend that notes when each RCPT arrives. TCP_NODELAY on: with Nagle, its RCPT
 * reply would wait for the proxy's delayed ACK of the MAIL reply (~40 ms a round), which would
 * measure the poll rate, not the invalidation.
 */
async function backendFor(slot: string): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer((sock) => {
    sockets.add(sock);
    sock.setNoDelay(true);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => undefined);
    sock.write('220 bench LMTP\r\n');
    // A proxy may reset a pooled connection (shutdown, a failed session): readline re-emits the
    // socket's error, and an unhandled one would end the bench.
    createInterface({ input: sock, crlfDelay: Infinity }).on('error', () => undefined).on('line', (line) => {
      const verb = line.slice(0, 4).toUpperCase();
      if (verb === 'LHLO') sock.write('250-bench\r\n250-ENHANCEDSTATUSCODES\r\n250 PIPELINING\r\n');
      else if (verb === 'RCPT') {
        arrivals.set(`${slot}|${/<([^>]*)>/.exec(line)?.[1] ?? ''}`, performance.now());
        sock.write('250 2.1.5 ok\r\n');
      } else if (verb === 'QUIT') sock.end('221 2.0.0 bye\r\n');
      else sock.write('250 2.0.0 ok\r\n');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? String(process.argv[i + 1]) : def;
}

// ---- child: one storeroute process ----------------------------------------------------------

async function child(configJson: string): Promise<void> {
  const config = parseConfig(JSON.parse(configJson) as ConfigInput);
  const running = await startStoreroute(config, pino({ level: 'warn' }));
  process.stdout.write(JSON.stringify({ port: running.lmtp!.port }) + '\n');
  createInterface({ input: process.stdin }).on('close', () => {
    running.stop().finally(() => process.exit(0));
  });
}

function startChild(config: ConfigInput): Promise<{ port: number; child: ChildProcess }> {
  const c = spawn(process.execPath, [...process.execArgv, new URL(import.meta.url).pathname, 'child', JSON.stringify(config)],
    { stdio: ['pipe', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    c.once('exit', (code) => reject(new Error(`storeroute child exited with ${code}`)));
    createInterface({ input: c.stdout! }).once('line', (line) => {
      resolve({ port: (JSON.parse(line) as { port: number }).port, child: c });
    });
  });
}

// ---- the poller ------------------------------------------------------------------------------

/** One LMTP connection that asks where USER's RCPT goes, over and over, until told to stop. */
class Poller {
  #buf = '';
  #waiter: ((reply: string) => void) | null = null;
  private constructor(private readonly sock: Socket, private readonly user: string) {
    sock.setNoDelay(true);
    sock.on('data', (d: Buffer) => {
      this.#buf += d.toString('latin1');
      this.#drain();
    });
  }

  static async open(port: number, user: string): Promise<Poller> {
    const sock = connect(port, '127.0.0.1');
    await new Promise((r, j) => { sock.once('connect', r); sock.once('error', j); });
    const p = new Poller(sock, user);
    await p.#reply(); // greeting
    sock.write('LHLO bench\r\n');
    while (!(await p.#reply()).startsWith('250 ')) { /* the LHLO continuation lines */ }
    return p;
  }

  #drain(): void {
    const nl = this.#buf.indexOf('\r\n');
    if (nl === -1 || !this.#waiter) return;
    const line = this.#buf.slice(0, nl);
    this.#buf = this.#buf.slice(nl + 2);
    const w = this.#waiter;
    this.#waiter = null;
    w(line);
  }

  #reply(): Promise<string> {
    return new Promise((r) => { this.#waiter = r; this.#drain(); });
  }

  /** The RCPT reply text of one MAIL/RCPT/RSET round, pipelined in one write. */
  async ask(): Promise<string> {
    this.sock.write(`MAIL FROM:<probe@bench.test>\r\nRCPT TO:<${this.user}>\r\nRSET\r\n`);
    await this.#reply();
    const rcpt = await this.#reply();
    await this.#reply();
    return rcpt;
  }

  /** Asks until an RCPT sent after `since` reached `slot`; resolves with when it arrived there. */
  async until(slot: string, since: number, deadlineMs = 5_000): Promise<number> {
    const until = performance.now() + deadlineMs;
    for (;;) {
      const r = await this.ask();
      const at = arrivals.get(`${slot}|${this.user}`) ?? -1;
      if (at >= since) return at;
      if (performance.now() > until) throw new Error(`RCPT still not at ${slot} after ${deadlineMs} ms (last reply "${r}")`);
    }
  }

  close(): void { this.sock.destroy(); }
}

// ---- measuring -------------------------------------------------------------------------------

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

function summary(ms: number[]): string {
  const s = [...ms].sort((a, b) => a - b);
  return `p50 ${percentile(s, 50).toFixed(2)} ms  p99 ${percentile(s, 99).toFixed(2)} ms  max ${(s.at(-1) ?? NaN).toFixed(2)} ms  (n=${s.length})`;
}

async function seed(dir: Directory, a: { port: number }, b: { port: number }): Promise<void> {
  await dir.createSlot({ name: 'slot-a', machine: 'm1', ip: '127.0.0.1', lmtp: a.port }, 'bench');
  await dir.createSlot({ name: 'slot-b', machine: 'm2', ip: '127.0.0.1', lmtp: b.port }, 'bench');
  await dir.createStore({ name: 'store1', slots: ['slot-a', 'slot-b'], preferredMaster: 'slot-a' }, 'bench');
  for (let i = 0; i < 8; i++) await dir.createUser({ name: userOf(i), store: 'store1' }, 'bench');
}

interface Measured {
  /** From sending the failover to each process's first RCPT at the new master. */
  fromSend: number[];
  /** The same from the mutation's acknowledgement (0 when a process was there first). */
  fromAck: number[];
  /** How long the mutation itself took to be acknowledged. */
  mutation: number[];
}

/** `failovers` failovers back and forth; per failover, every poller's latency. */
async function measureFailovers(dir: Directory, pollers: Poller[], failovers: number): Promise<Measured> {
  const m: Measured = { fromSend: [], fromAck: [], mutation: [] };
  let master = (await dir.getStore('store1'))!.currentMaster;
  // Warm-up: both pools connected, both directions taken once.
  for (let i = 0; i < 2; i++) {
    const to = master === 'slot-a' ? 'slot-b' : 'slot-a';
    const since = performance.now();
    await dir.failover('store1', { to }, 'bench');
    await Promise.all(pollers.map((p) => p.until(to, since)));
    master = to;
  }
  for (let i = 0; i < failovers; i++) {
    const to = master === 'slot-a' ? 'slot-b' : 'slot-a';
    const started = performance.now();
    const seen = pollers.map((p) => p.until(to, started));
    await dir.failover('store1', { to }, 'bench');
    const acked = performance.now();
    m.mutation.push(acked - started);
    for (const t of await Promise.all(seen)) {
      m.fromSend.push(t - started);
      m.fromAck.push(Math.max(0, t - acked));
    }
    master = to;
  }
  return m;
}

/** The floor: a bare PUBLISH → message round trip on the same redis-server. */
async function publishRoundTrip(url: string, n: number): Promise<number[]> {
  const obs = { logger: pino({ level: 'warn' }), metrics: new Registry() };
  const config = parseConfig({ directory: { backend: 'redis', redis: { url } } }).directory.redis;
  const pub = createRedisClient(config, obs, { role: 'bench-pub' });
  const sub = createRedisClient(config, obs, { role: 'bench-sub' });
  await sub.subscribe('bench:inval');
  let waiter: (() => void) | null = null;
  sub.on('message', () => { const w = waiter; waiter = null; w?.(); });
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const got = new Promise<void>((r) => { waiter = r; });
    const t = performance.now();
    await pub.publish('bench:inval', String(i));
    await got;
    out.push(performance.now() - t);
  }
  pub.disconnect();
  sub.disconnect();
  return out;
}

function childConfig(directory: ConfigInput['directory']): ConfigInput {
  return {
    log: { level: 'warn' },
    directory,
    lmtp: { listen: { host: '127.0.0.1', port: 0 } },
    auth: { enabled: false },
    admin: { enabled: false },
    journal: { enabled: false },
  };
}

async function main(): Promise<void> {
  const failovers = Number(arg('failovers', '200'));
  const procs = arg('procs', '1,4,8').split(',').map(Number);
  const embeddedFailovers = Number(arg('embedded-failovers', '200'));
  console.log(`bench/invalidation — ${cpus()[0]?.model ?? '?'}, ${cpus().length} cpus, node ${process.version}, `
    + `load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  const a = await backendFor('slot-a');
  const b = await backendFor('slot-b');
  const redis = await startRedis();
  const obs = { logger: pino({ level: 'warn' }), metrics: new Registry() };
  try {
    for (const n of procs) {
      const keyPrefix = uniquePrefix('inval');
      const dirConfig = { backend: 'redis' as const, redis: { url: redis.url, keyPrefix } };
      const dir = await RedisDirectory.open(parseConfig({ directory: dirConfig }).directory.redis, obs);
      await seed(dir, a, b);
      const children = await Promise.all(Array.from({ length: n }, () => startChild(childConfig(dirConfig))));
      const pollers = await Promise.all(children.map((c, i) => Poller.open(c.port, userOf(i))));
      try {
        const ref = await publishRoundTrip(redis.url, failovers);
        const m = await measureFailovers(dir, pollers, failovers);
        console.log(`redis N=${n}`);
        console.log(`  failover sent → each process routes to the new master: ${summary(m.fromSend)}`);
        console.log(`  failover acknowledged → the same:                      ${summary(m.fromAck)}`);
        console.log(`  the failover mutation itself:                          ${summary(m.mutation)}`);
        console.log(`  reference, bare PUBLISH → message round trip:          ${summary(ref)}`);
      } finally {
        for (const p of pollers) p.close();
        await Promise.all(children.map((c) => stopChild(c.child)));
        await dir.close();
      }
    }

    const folder = mkdtempSync(join(tmpdir(), 'sr-inval-'));
    const file = join(folder, 'directory.json');
    const dirConfig = { backend: 'embedded' as const, embedded: { file } };
    const dir = await EmbeddedDirectory.open({ file, historyLimit: 10_000 }, obs);
    await seed(dir, a, b);
    const c = await startChild(childConfig(dirConfig));
    const poller = await Poller.open(c.port, userOf(0));
    try {
      const m = await measureFailovers(dir, [poller], embeddedFailovers);
      console.log('embedded N=1 (the failover made by another process on the same file)');
      console.log(`  failover sent → the process routes to the new master:  ${summary(m.fromSend)}`);
      console.log(`  failover acknowledged (file saved) → the same:         ${summary(m.fromAck)}`);
      console.log(`  the failover mutation itself (lock, fsyncs, history):  ${summary(m.mutation)}`);
    } finally {
      poller.close();
      await stopChild(c.child);
      await dir.close();
    }
  } finally {
    await redis.close();
    await a.close();
    await b.close();
  }
}

if (process.argv[2] === 'child') await child(process.argv[3]!);
else await main();
