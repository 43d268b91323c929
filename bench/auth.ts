/**
 * bench/auth — the auth_http endpoint under nginx-shaped load, beside nginx itself answering a
 * fixed auth_http reply (`add_header Auth-Status OK …; return 204;`) in the same run.
 *
 *   npx tsx bench/auth.ts [--seconds 5] [--rounds 2] [--clients 50] [--users 10000] [--generator wrk|node]
 *
 * A third server gives the floor of node:http itself: a minimal server answering from a Map.
 *
 * Processes: this one (orchestrates, starts nginx), a storeroute auth server child (embedded
 * directory with --users users, in-memory throttle, pino at info to /dev/null) and the load
 * generator: `wrk` (Debian package `wrk`; one thread, 50 connections, each a loop of: connect,
 * write one request exactly as nginx writes it, read the answer until the server closes) when it
 * is installed, else two Node generator processes of 25 clients each (a single Node generator
 * was the bottleneck: it could not push nginx past what one Node event loop can connect). Then
 * the same with keep-alive.
 * nginx runs one worker, the same as our one Node process. Target: storeroute ≥ 0.6 of nginx's
 * req/s with a connection per request, and p99 < 10 ms.
 */
import { execSync, fork, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { Registry } from 'prom-client';

const SELF = fileURLToPath(import.meta.url);

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i !== -1 ? Number(process.argv[i + 1]) : def;
}

// ---------------------------------------------------------------- the request nginx sends
function requestFor(user: string, keepAlive: boolean): Buffer {
  return Buffer.from(
    'GET /auth HTTP/1.0\r\nHost: 127.0.0.1\r\nAuth-Method: plain\r\n'
    + `Auth-User: ${user}\r\nAuth-Pass: secret%20pw\r\nAuth-Protocol: imap\r\nAuth-Login-Attempt: 1\r\n`
    + 'Client-IP: 192.0.2.77\r\nX-Storeroute-Secret: bench-secret\r\n'
    + (keepAlive ? 'Connection: keep-alive\r\n' : '') + '\r\n', 'latin1');
}

// ---------------------------------------------------------------- role: storeroute server
async function serverRole(users: number): Promise<void> {
  const { parseConfig } = await import('../src/config/index.js');
  const { createDirectory } = await import('../src/directory/index.js');
  const { createAuthServer, createMemoryThrottleStore } = await import('../src/auth/index.js');
  const dir = mkdtempSync(join(tmpdir(), 'bench-auth-'));
  // The directory is seeded from a file (one parse) rather than built by --users persisted
  // mutations, which rewrote the whole file each time (minutes of set-up for 10,000 users).
  const seed = join(dir, 'seed.json');
  const userMap: Record<string, string> = {};
  for (let i = 0; i < users; i++) userMap[`user${i}`] = 'store1';
  writeFileSync(seed, JSON.stringify({
    slots: { 'slot-a': { machine: 'm1', ip: '10.0.0.1' }, 'slot-b': { machine: 'm2', ip: '10.0.0.2' } },
    stores: { store1: { slots: ['slot-a', 'slot-b'], preferredMaster: 'slot-a' } },
    users: userMap,
  }));
  const config = parseConfig({
    directory: { backend: 'embedded', embedded: { file: join(dir, 'directory.json'), seed } },
    auth: { listen: { port: 0 }, sharedSecret: { header: 'X-Storeroute-Secret', value: 'bench-secret' } },
  });
  const obs = { logger: pino({ level: 'info' }, pino.destination('/dev/null')), metrics: new Registry() };
  const directory = await createDirectory(config.directory, obs);
  const server = createAuthServer({ config: config.auth, directory, throttle: createMemoryThrottleStore(), obs });
  const { port } = await server.listen();
  const { handleBindingProblem } = await import('../src/auth/link-handle.js');
  const problem = handleBindingProblem();
  process.send!({ port, socketLayer: problem === null ? 'handle' : `net (handle unavailable: ${problem})` });
  process.on('message', async () => {
    await server.close();
    await directory.close();
    rmSync(dir, { recursive: true, force: true });
    process.exit(0);
  });
}

// ---------------------------------------------------------------- role: minimal Node server
/** The floor of node:http itself: an in-memory Map lookup and a fixed answer, nothing else. */
async function minimalRole(users: number): Promise<void> {
  const { createServer } = await import('node:http');
  const map = new Map<string, string>();
  for (let i = 0; i < users; i++) map.set(`user${i}`, '10.0.0.1');
  const server = createServer((req, res) => {
    const ip = map.get(String(req.headers['auth-user']));
    res.writeHead(200, ip ? { 'Auth-Status': 'OK', 'Auth-Server': ip, 'Auth-Port': '143', 'Content-Length': '0' }
      : { 'Auth-Status': 'Invalid login or password', 'Content-Length': '0' });
    res.end();
  });
  server.listen(0, '127.0.0.1', () => {
    const a = server.address();
    process.send!({ port: a && typeof a === 'object' ? a.port : 0 });
  });
  process.on('message', () => { server.close(); process.exit(0); });
}

// ---------------------------------------------------------------- role: load generator
interface LoadResult { requests: number; errors: number; bad: number; seconds: number; p50: number; p99: number; max: number }

async function loadRole(port: number, clients: number, seconds: number, keepAlive: boolean, users: number): Promise<LoadResult> {
  const latencies: number[] = [];
  let errors = 0;
  let bad = 0;
  let n = 0;
  const until = performance.now() + seconds * 1000;
  const started = performance.now();

  function closeLoop(id: number): Promise<void> {
    // Spread source addresses over 127.0.0.x so one run does not run out of ephemeral ports.
    const localAddress = `127.0.0.${1 + (id % 16)}`;
    return new Promise((resolve) => {
      const next = () => {
        if (performance.now() >= until) return resolve();
        const t0 = performance.now();
        const req = requestFor(`user${n++ % users}`, false);
        let got = '';
        const s = connect({ port, host: '127.0.0.1', localAddress }, () => s.write(req));
        s.setEncoding('latin1');
        s.on('data', (c: string) => { got += c; });
        s.on('error', () => { errors++; });
        s.on('close', () => {
          if (got.includes('Auth-Status: OK')) latencies.push(performance.now() - t0);
          else if (got) bad++;
          next();
        });
      };
      next();
    });
  }

  function keepAliveLoop(id: number): Promise<void> {
    const localAddress = `127.0.0.${1 + (id % 16)}`;
    return new Promise((resolve) => {
      const s = connect({ port, host: '127.0.0.1', localAddress });
      s.setEncoding('latin1');
      let got = '';
      let t0 = 0;
      const send = () => {
        if (performance.now() >= until) { s.destroy(); return resolve(); }
        t0 = performance.now();
        got = '';
        s.write(requestFor(`user${n++ % users}`, true));
      };
      s.on('connect', send);
      s.on('data', (c: string) => {
        got += c;
        if (!got.includes('\r\n\r\n')) return;
        if (got.includes('Auth-Status: OK')) latencies.push(performance.now() - t0); else bad++;
        send();
      });
      s.on('error', () => { errors++; });
      s.on('close', () => resolve());
    });
  }

  await Promise.all(Array.from({ length: clients }, (_, i) => (keepAlive ? keepAliveLoop(i) : closeLoop(i))));
  const elapsed = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? NaN;
  return { requests: latencies.length, errors, bad, seconds: elapsed, p50: q(0.5), p99: q(0.99), max: latencies.at(-1) ?? NaN };
}

// ---------------------------------------------------------------- orchestration
function child(args: string[]) {
  return fork(SELF, args, { execArgv: process.execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
}

function runNodeLoad(port: number, clients: number, seconds: number, keepAlive: boolean, users: number): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const c = child(['load', String(port), String(clients), String(seconds), keepAlive ? '1' : '0', String(users)]);
    c.once('message', (m) => resolve(m as LoadResult));
    c.once('exit', (code) => { if (code) reject(new Error(`load generator exited with ${code}`)); });
  });
}

/** Two Node generator processes (clients split between them); percentiles of the slower one. */
async function runNodeLoadPair(port: number, clients: number, seconds: number, keepAlive: boolean, users: number): Promise<LoadResult> {
  const half = Math.ceil(clients / 2);
  const [a, b] = await Promise.all([runNodeLoad(port, half, seconds, keepAlive, users), runNodeLoad(port, clients - half, seconds, keepAlive, users)]);
  return {
    requests: a.requests + b.requests, errors: a.errors + b.errors, bad: a.bad + b.bad, seconds: Math.max(a.seconds, b.seconds),
    p50: Math.max(a.p50, b.p50), p99: Math.max(a.p99, b.p99), max: Math.max(a.max, b.max),
  };
}

/**
 * wrk drives the same nginx-shaped bytes (a Lua request() returns the raw request, users cycling)
 * and reports through done() as one JSON line. Non-2xx counts as "bad"; that every target answers
 * Auth-Status OK to these requests is checked once before the runs (probe()).
 */
const WRK_SCRIPT = String.raw`
local users = tonumber(os.getenv("BENCH_USERS"))
local tail = "\r\nAuth-Pass: secret%20pw\r\nAuth-Protocol: imap\r\nAuth-Login-Attempt: 1\r\nClient-IP: 192.0.2.77\r\nX-Storeroute-Secret: bench-secret\r\n"
  .. (os.getenv("BENCH_KEEPALIVE") == "1" and "Connection: keep-alive\r\n" or "") .. "\r\n"
local n = 0
request = function()
  n = n + 1
  return "GET /auth HTTP/1.0\r\nHost: 127.0.0.1\r\nAuth-Method: plain\r\nAuth-User: user" .. (n % users) .. tail
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('BENCH_JSON {"requests":%d,"us":%d,"p50":%d,"p99":%d,"max":%d,"errors":%d,"bad":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
    e.connect + e.read + e.write + e.timeout, e.status))
end
`;

function wrkInstalled(): boolean {
  return !spawnSync('wrk', ['--version']).error;
}

let wrkScriptFile: string | undefined;
function runWrk(port: number, clients: number, seconds: number, keepAlive: boolean, users: number, threads: number): Promise<LoadResult> {
  if (!wrkScriptFile) {
    wrkScriptFile = join(mkdtempSync(join(tmpdir(), 'bench-auth-wrk-')), 'nginx-auth.lua');
    writeFileSync(wrkScriptFile, WRK_SCRIPT);
  }
  return new Promise((resolve, reject) => {
    const w = spawn('wrk', ['-t', String(threads), '-c', String(clients), '-d', `${seconds}s`, '--timeout', '5s', '-s', wrkScriptFile!, `http://127.0.0.1:${port}/auth`],
      { env: { ...process.env, BENCH_USERS: String(users), BENCH_KEEPALIVE: keepAlive ? '1' : '0' }, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    w.stdout.on('data', (c) => { out += String(c); });
    w.on('error', reject);
    w.on('exit', (code) => {
      const line = /BENCH_JSON (.*)/.exec(out)?.[1];
      if (code !== 0 || !line) return reject(new Error(`wrk exited with ${code}: ${out}`));
      const r = JSON.parse(line) as { requests: number; us: number; p50: number; p99: number; max: number; errors: number; bad: number };
      resolve({ requests: r.requests - r.bad, errors: r.errors, bad: r.bad, seconds: r.us / 1e6, p50: r.p50 / 1000, p99: r.p99 / 1000, max: r.max / 1000 });
    });
  });
}

interface Generator { name: string; run(port: number, clients: number, seconds: number, keepAlive: boolean, users: number): Promise<LoadResult> }

function pickGenerator(wanted: string | undefined, threads: number): Generator {
  if (wanted === 'node' || (wanted === undefined && !wrkInstalled())) {
    return { name: 'two Node generator processes (install wrk for a lighter generator)', run: runNodeLoadPair };
  }
  if (!wrkInstalled()) throw new Error('wrk is not installed: apt-get install wrk, or --generator node');
  return { name: `wrk, ${threads} thread(s)`, run: (...a) => runWrk(...a, threads) };
}

/** One request to each target before measuring: the answer must be Auth-Status OK. */
function probe(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let got = '';
    const s = connect(port, '127.0.0.1', () => s.write(requestFor('user1', false)));
    s.setEncoding('latin1');
    s.on('data', (c: string) => { got += c; });
    s.on('error', reject);
    s.on('close', () => (got.includes('Auth-Status: OK') ? resolve() : reject(new Error(`port ${port} answered: ${JSON.stringify(got)}`))));
  });
}

/** utime + stime of these processes, in seconds (Linux /proc). */
function cpuSeconds(pids: number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14, 15 of stat)
    } catch {
      // the process is gone: it used no more CPU
    }
  }
  return ticks / CLK_TCK;
}
const CLK_TCK = Number(execSync('getconf CLK_TCK').toString().trim()) || 100;

function childrenOf(ppid: number): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === ppid) out.push(Number(d));
    } catch {
      // raced with an exiting process
    }
  }
  return out;
}

interface Measured extends LoadResult { rate: number; cpuUsPerReq: number }

async function measure(gen: Generator, port: number, pids: number[], clients: number, seconds: number, keepAlive: boolean, users: number): Promise<Measured> {
  const before = cpuSeconds(pids);
  const r = await gen.run(port, clients, seconds, keepAlive, users);
  const cpu = cpuSeconds(pids) - before;
  return { ...r, rate: r.requests / r.seconds, cpuUsPerReq: (cpu * 1e6) / Math.max(1, r.requests) };
}

async function main(): Promise<void> {
  const seconds = arg('seconds', 5);
  const clients = arg('clients', 50);
  const users = arg('users', 10_000);
  const rounds = arg('rounds', 2);
  const gi = process.argv.indexOf('--generator');
  const gen = pickGenerator(gi !== -1 ? process.argv[gi + 1] : undefined, arg('threads', 1));
  const { startNginx } = await import('../test/helpers/nginx.js');
  const { freePort } = await import('../test/helpers/ports.js');

  console.log(`machine: ${cpus()[0]?.model ?? '?'}, ${cpus().length} cores, node ${process.version}, load average at start: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  console.log(`load: ${clients} concurrent clients, ${rounds} rounds x ${seconds} s per server and mode, ${users} users, nginx-shaped HTTP/1.0 requests; generator: ${gen.name}`);

  const server = child(['server', String(users)]);
  const { port: ourPort, socketLayer } = await new Promise<{ port: number; socketLayer: string }>((resolve) => server.once('message', (m) => resolve(m as { port: number; socketLayer: string })));
  console.log(`storeroute auth_http socket layer: ${socketLayer}`);
  const minimal = child(['minimal', String(users)]);
  const { port: minimalPort } = await new Promise<{ port: number }>((resolve) => minimal.once('message', (m) => resolve(m as { port: number })));
  const nginxPort = await freePort();
  const nginx = await startNginx({
    http: `server {
      listen 127.0.0.1:${nginxPort};
      location /auth { add_header Auth-Status OK; add_header Auth-Server 127.0.0.1; add_header Auth-Port 143; return 204; }
    }`,
    readyPorts: [{ host: '127.0.0.1', port: nginxPort }],
    workerProcesses: 1,
  });
  const targets = [
    { name: 'nginx fixed reply', port: nginxPort, pids: [nginx.pid, ...childrenOf(nginx.pid)] },
    { name: 'minimal node:http', port: minimalPort, pids: [minimal.pid!] },
    { name: 'storeroute auth', port: ourPort, pids: [server.pid!] },
  ];

  const fmt = (r: Measured) => `${Math.round(r.rate).toString().padStart(6)} req/s  p50 ${r.p50.toFixed(2)} ms  p99 ${r.p99.toFixed(2).padStart(6)} ms`
    + `  server CPU ${r.cpuUsPerReq.toFixed(0).padStart(4)} us/req  (errors ${r.errors}, non-OK ${r.bad})`;
  try {
    for (const t of targets) await probe(t.port);
    for (const keepAlive of [false, true]) {
      const mode = keepAlive ? 'keep-alive' : 'connection per request';
      for (const t of targets) await gen.run(t.port, clients, 1, keepAlive, users); // warm-up
      const runs = new Map<string, Measured[]>(targets.map((t) => [t.name, []]));
      // Interleaved rounds: the machine is shared, so each server sees the same mix of neighbours.
      for (let r = 0; r < rounds; r++) {
        for (const t of targets) runs.get(t.name)!.push(await measure(gen, t.port, t.pids, clients, seconds, keepAlive, users));
      }
      const best = (name: string) => runs.get(name)!.reduce((a, b) => (b.rate > a.rate ? b : a));
      const medianCpu = (name: string) => {
        const v = runs.get(name)!.map((m) => m.cpuUsPerReq).sort((a, b) => a - b);
        return v[Math.floor(v.length / 2)]!;
      };
      console.log(`\n${mode} (best round of ${rounds}):`);
      for (const t of targets) console.log(`  ${t.name.padEnd(18)}: ${fmt(best(t.name))}`);
      const ref = best('nginx fixed reply');
      const ours = best('storeroute auth');
      const ratio = ours.rate / ref.rate;
      const cpuRatio = medianCpu('nginx fixed reply') / medianCpu('storeroute auth');
      console.log(`  ratio storeroute/nginx: ${ratio.toFixed(2)} by req/s; ${cpuRatio.toFixed(2)} by server CPU per request (capacity on one core)`);
      console.log(`  ratio minimal/nginx: ${(best('minimal node:http').rate / ref.rate).toFixed(2)} by req/s; `
        + `${(medianCpu('nginx fixed reply') / medianCpu('minimal node:http')).toFixed(2)} by CPU per request`);
      if (!keepAlive) console.log(`  target (>= 0.60 of nginx, p99 < 10 ms): ${ratio >= 0.6 && ours.p99 < 10 ? 'met' : 'NOT met'} in this run`);
    }
    console.log(`\nload average at end: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  } finally {
    if (wrkScriptFile) rmSync(dirname(wrkScriptFile), { recursive: true, force: true });
    await nginx.stop();
    for (const c of [server, minimal]) {
      c.send('stop');
      await new Promise((r) => c.once('exit', r));
    }
  }
}

const [role, ...rest] = process.argv.slice(2);
if (role === 'server') {
  void serverRole(Number(rest[0]));
} else if (role === 'minimal') {
  void minimalRole(Number(rest[0]));
} else if (role === 'load') {
  const [port, clients, seconds, keepAlive, users] = rest.map(Number) as [number, number, number, number, number];
  void loadRole(port, clients, seconds, keepAlive === 1, users).then((r) => { process.send!(r); process.disconnect(); });
} else {
  main().catch((err) => { console.error(err); process.exitCode = 1; });
}
