/**
 * Lookups while `storeroute directory apply` writes a 100,000-user file into Redis (issue 11
 * item 3): the slowest lookup during the apply must stay within 50 ms. Printed beside the same
 * lookups with no apply running, measured in the same run on the same redis-server.
 *
 *   npx tsx bench/directory-apply.ts [--users 100000] [--callers 8] [--reference-seconds 5]
 *
 * The apply is the real CLI in a child process (as an operator runs it); the lookups are uncached
 * resolve() calls (one Lua read script each) from this process, so every one waits for Redis.
 * Three applies: a restore into an empty directory, a file that moves half the users to other
 * stores (a 100,000-user snapshot read, then big tables staged and swapped in), and a small change
 * on the 100,000-user directory (patched in one script). Redis' slowlog shows its slowest command
 * during each, which is what a lookup can be stuck behind. Each apply is preceded by a dry run of
 * the same file (same child, same parse, snapshot and plan, no writes): the CPU it takes from the
 * machine, without its writes.
 *
 * Then the embedded backend: a process holding the directory (as `serve` does) while the CLI
 * applies a file changing half the users; the process re-reads the whole file once, and its
 * lookups wait for that.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { parseConfig } from '../src/config/index.js';
import { createRedisClient, EmbeddedDirectory, RedisDirectory } from '../src/directory/index.js';
import { startRedis, uniquePrefix } from '../test/helpers/redis.js';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
}
const USERS = arg('users', 100_000);
const CALLERS = arg('callers', 8);
const REFERENCE_S = arg('reference-seconds', 5);
const root = resolve(import.meta.dirname, '..');
/** Built once: a name string per lookup would be garbage too. */
const names = Array.from({ length: USERS }, (_, i) => `user${i}@example.com`);

/** 20 slots on 10 machines, 10 stores; `shift` moves every other user to the next store. */
function layoutFile(dir: string, name: string, users: number, shift: number, extra = 0): string {
  const slots: Record<string, unknown> = {};
  const stores: Record<string, unknown> = {};
  for (let m = 1; m <= 10; m++) for (let p = 1; p <= 2; p++) slots[`slot${m}0${p}`] = { machine: `imap${m}`, ip: `127.0.${m}.${p}` };
  for (let s = 1; s <= 10; s++) stores[`store${s}`] = { slots: [`slot${s}01`, `slot${(s % 10) + 1}02`], preferredMaster: `slot${s}01` };
  const u: Record<string, string> = {};
  for (let i = 0; i < users + extra; i++) u[`user${i}@example.com`] = `store${((i + (i % 2 ? shift : 0)) % 10) + 1}`;
  const file = join(dir, name);
  writeFileSync(file, JSON.stringify({ slots, stores, users: u }));
  return file;
}

function runCli(config: string, args: string[]): Promise<{ code: number; ms: number; stderr: string }> {
  const start = performance.now();
  return new Promise((done, fail) => {
    const child = spawn(join(root, 'node_modules/.bin/tsx'), [join(root, 'src/cli/index.ts'), '--config', config, ...args],
      { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.on('error', fail);
    child.on('close', (code) => done({ code: code ?? -1, ms: performance.now() - start, stderr }));
  });
}

interface Latencies { count: number; errors: number; p50: number; p99: number; max: number }

/**
 * Latencies kept in one preallocated Float64Array: a JS array of a million boxed numbers would
 * make this process's own garbage collection show up as slow lookups.
 */
class Samples {
  #data = new Float64Array(1 << 22);
  #n = 0;
  errors = 0;
  add(ms: number): void {
    if (this.#n < this.#data.length) this.#data[this.#n++] = ms;
  }
  summary(): Latencies {
    const times = this.#data.subarray(0, this.#n).sort();
    const at = (q: number) => times[Math.min(times.length - 1, Math.floor(q * times.length))] ?? NaN;
    return { count: this.#n, errors: this.errors, p50: at(0.5), p99: at(0.99), max: times[times.length - 1] ?? NaN };
  }
}

/** CALLERS loops of resolve() until `until` settles; every call's latency in ms. */
async function lookupsDuring(dir: RedisDirectory, until: Promise<unknown>): Promise<Latencies> {
  let stop = false;
  void until.finally(() => { stop = true; });
  const samples = new Samples();
  await Promise.all(Array.from({ length: CALLERS }, async (_, w) => {
    for (let i = w; !stop; i += CALLERS) {
      const t = performance.now();
      try {
        await dir.resolve(names[(i * 7919) % USERS] as string);
      } catch {
        samples.errors++; // before a restore: "no directory" (451), answered as fast as a route
      }
      samples.add(performance.now() - t);
    }
  }));
  return samples.summary();
}

/** Lookups as a server makes them (each from an event-loop turn) until `until` settles: in-process lookups. */
async function embeddedLookupsDuring(dir: EmbeddedDirectory, until: Promise<unknown>): Promise<Latencies> {
  let stop = false;
  void until.finally(() => { stop = true; });
  const samples = new Samples();
  for (let i = 0; !stop; i++) {
    const t = performance.now();
    await new Promise((r) => setImmediate(r)); // a lookup waits for the event loop like a socket read does
    await dir.resolve(names[(i * 7919) % USERS] as string);
    samples.add(performance.now() - t);
  }
  return samples.summary();
}

async function embeddedPart(tmp: string, restore: string, moved: string): Promise<void> {
  const file = join(tmp, 'directory.json');
  const config = join(tmp, 'embedded.yaml');
  writeFileSync(config, `log: { level: silent }\ndirectory:\n  backend: embedded\n  embedded: { file: ${file} }\n`);
  const r0 = await runCli(config, ['--actor', 'bench', 'directory', 'apply', restore]);
  if (r0.code !== 0) throw new Error(`embedded restore failed (${r0.code}): ${r0.stderr}`);
  const dir = await EmbeddedDirectory.open({ file, historyLimit: 10_000 }, { logger: pino({ level: 'warn' }), metrics: new Registry() });
  try {
    const reference = await embeddedLookupsDuring(dir, new Promise((r) => setTimeout(r, REFERENCE_S * 1000)));
    line(`embedded reference: no apply (${REFERENCE_S} s)`, reference);
    const dry = runCli(config, ['--actor', 'bench', 'directory', 'apply', '--dry-run', moved]);
    line('embedded, during a dry run moving 50,000', await embeddedLookupsDuring(dir, dry));
    const before = await dir.version();
    const apply = runCli(config, ['--actor', 'bench', 'directory', 'apply', moved]);
    // Until this process has re-read the file: that is when its lookups wait.
    const adopted = apply.then(async () => {
      while (await dir.version() === before) await new Promise((r) => setTimeout(r, 5));
    });
    const l = await embeddedLookupsDuring(dir, adopted);
    const r = await apply;
    if (r.code !== 0) throw new Error(`embedded apply failed (${r.code}): ${r.stderr}`);
    line('embedded, during an apply moving 50,000', l, `  (apply ${(r.ms / 1000).toFixed(1)} s, then re-read here)`);
  } finally {
    await dir.close();
  }
}

const ms = (n: number) => `${n.toFixed(2).padStart(7)} ms`;
const line = (label: string, l: Latencies, extra = '') => console.log(`${label.padEnd(44)} lookups ${String(l.count).padStart(7)}`
  + `  p50 ${ms(l.p50)}  p99 ${ms(l.p99)}  max ${ms(l.max)}${l.errors ? `  (${l.errors} answered "no directory")` : ''}${extra}`);

async function main(): Promise<void> {
  const redis = await startRedis();
  const obs = { logger: pino({ level: 'warn' }), metrics: new Registry() };
  const tmp = mkdtempSync(join(tmpdir(), 'sr-bench-apply-'));
  const prefix = uniquePrefix('bench-apply');
  const config = join(tmp, 'storeroute.yaml');
  writeFileSync(config, `log: { level: silent }\ndirectory:\n  backend: redis\n  redis: { url: "${redis.url}", keyPrefix: "${prefix}" }\n`);
  const redisConfig = parseConfig({ directory: { backend: 'redis', redis: { url: redis.url, keyPrefix: prefix } } }).directory.redis;
  const raw = createRedisClient(redisConfig, obs, { role: 'bench-raw' });
  const dir = await RedisDirectory.open(redisConfig, obs);
  const slowest = async () => {
    const log = (await raw.slowlog('GET', 1000)) as Array<[number, number, number, string[]]>;
    const top = log.sort((a, b) => b[2] - a[2])[0];
    await raw.slowlog('RESET');
    return top ? `  redis slowest: ${(top[2] / 1000).toFixed(1)} ms ${top[3][0]}${top[3][0]?.startsWith('evalsha') ? '' : ` ${top[3][1] ?? ''}`}` : '';
  };
  try {
    const info = await raw.info('server');
    console.log(`machine: ${cpus()[0]?.model ?? '?'}, ${availableParallelism()} cpus, ${Math.round(totalmem() / 2 ** 30)} GiB, `
      + `node ${process.version}, redis ${/redis_version:(\S+)/.exec(info)?.[1] ?? '?'} (same host, loopback)`);
    console.log(`${USERS.toLocaleString('en-US')} users, ${CALLERS} concurrent lookup loops, apply by the CLI in a child process`);
    await raw.config('SET', 'slowlog-log-slower-than', '1000');

    const restore = layoutFile(tmp, 'restore.json', USERS, 0);
    const moved = layoutFile(tmp, 'moved.json', USERS, 3);
    const small = layoutFile(tmp, 'small.json', USERS, 3, 100);
    await dir.resolve('user1@example.com').catch(() => undefined); // connections and script cache warm

    const scenarios: Array<[string, string]> = [
      ['a restore into an empty directory', restore],
      [`an apply moving ${(USERS / 2).toLocaleString('en-US')} users`, moved],
      ['an apply adding 100 users', small],
    ];
    const during: Latencies[] = [];
    const references: Latencies[] = [];
    for (const [i, [what, file]] of scenarios.entries()) {
      // Same child, same file, same parse + snapshot + plan, but nothing written: the CPU the apply
      // takes from this 2-core machine, without its writes to Redis.
      await raw.slowlog('RESET');
      const dry = runCli(config, ['--actor', 'bench', 'directory', 'apply', '--dry-run', file]);
      const dryL = await lookupsDuring(dir, dry);
      const d = await dry;
      if (d.code !== 0) throw new Error(`dry run failed (${d.code}): ${d.stderr}`);
      line(`during a dry run of ${what}`, dryL, `  (${(d.ms / 1000).toFixed(1)} s)${await slowest()}`);
      const apply = runCli(config, ['--actor', 'bench', 'directory', 'apply', file]);
      const l = await lookupsDuring(dir, apply);
      const r = await apply;
      if (r.code !== 0) throw new Error(`apply failed (${r.code}): ${r.stderr}`);
      line(`during ${what}`, l, `  (${(r.ms / 1000).toFixed(1)} s)${await slowest()}`);
      during.push(l);
      references.push(dryL);
      if (i === 0) {
        const reference = await lookupsDuring(dir, new Promise((done) => setTimeout(done, REFERENCE_S * 1000)));
        line(`reference: no apply (${REFERENCE_S} s)`, reference, await slowest());
        references.push(reference);
      }
    }
    const reference2 = await lookupsDuring(dir, new Promise((r) => setTimeout(r, REFERENCE_S * 1000)));
    line(`reference again: no apply (${REFERENCE_S} s)`, reference2, await slowest());
    references.push(reference2);

    const worst = Math.max(...during.map((l) => l.max));
    console.log(`slowest lookup during an apply: ${worst.toFixed(1)} ms (target <= 50 ms) ${worst <= 50 ? 'PASS' : 'FAIL'}; `
      + `slowest in the references (no apply, or dry runs): ${Math.max(...references.map((l) => l.max)).toFixed(1)} ms`);
    console.log(`version after: ${await dir.version()} (restore ${USERS + 30} + move ${USERS} + 100 changes, one audit record each)`);
    await embeddedPart(tmp, restore, moved);
  } finally {
    raw.disconnect();
    await dir.close();
    await redis.close();
  }
}

await main();
