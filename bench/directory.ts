/**
 * Directory lookups per second: cached resolve(), uncached resolve() (one Lua read script per
 * lookup) and, as the same-run reference, a raw Redis GET loop on the same kind of connection
 * (same ioredis options via createRedisClient) with the same number of concurrent callers.
 *
 *   npx tsx bench/directory.ts [--callers 64] [--seconds 3] [--users 10000] [--rounds 3]
 *
 * Variants are interleaved round by round (so load from other processes hits each alike) and
 * compared by their median round.
 *
 * Targets (issue #2): cached > 1,000,000/s; uncached >= 0.5 x raw GET.
 */
import { cpus, availableParallelism, totalmem } from 'node:os';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { parseConfig } from '../src/config/index.js';
import { createDirectory, createRedisClient, RedisDirectory, type Directory } from '../src/directory/index.js';
import { startRedis, uniquePrefix } from '../test/helpers/redis.js';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
}

const CALLERS = arg('callers', 64);
const SECONDS = arg('seconds', 3);
const USERS = arg('users', 10_000);
const ROUNDS = arg('rounds', 3);

/** `CALLERS` concurrent loops of `op` for `SECONDS`; returns operations per second. */
async function measure(op: (i: number) => Promise<unknown>): Promise<number> {
  const until = performance.now() + SECONDS * 1000;
  let count = 0;
  const worker = async (w: number) => {
    let i = w;
    // Check the clock every 256 operations: reading it costs more than a cached lookup.
    for (;;) {
      for (let k = 0; k < 256; k++) {
        await op(i);
        i += CALLERS;
      }
      count += 256;
      if (performance.now() >= until) return;
    }
  };
  const start = performance.now();
  await Promise.all(Array.from({ length: CALLERS }, (_, w) => worker(w)));
  return count / ((performance.now() - start) / 1000);
}

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

async function main(): Promise<void> {
  const redis = await startRedis();
  const obs = { logger: pino({ level: 'warn' }), metrics: new Registry() };
  const prefix = uniquePrefix('bench');
  const config = parseConfig({ directory: { backend: 'redis', redis: { url: redis.url, keyPrefix: prefix } } }).directory;
  const raw = createRedisClient(config.redis, obs, { role: 'bench-raw' });
  const cached = await createDirectory(config, obs);
  const uncached: Directory = await RedisDirectory.open(config.redis, { ...obs, metrics: new Registry() });
  try {
    const info = await raw.info('server');
    const redisVersion = /redis_version:(\S+)/.exec(info)?.[1] ?? '?';
    console.log(`machine: ${cpus()[0]?.model ?? '?'}, ${availableParallelism()} cpus, ${Math.round(totalmem() / 2 ** 30)} GiB, `
      + `node ${process.version}, redis ${redisVersion} (same host, loopback)`);
    console.log(`callers: ${CALLERS} concurrent, ${SECONDS} s per measurement, ${ROUNDS} interleaved rounds (median shown), ${fmt(USERS)} users`);

    // Layout: 20 slots on 10 machines, 10 stores, USERS users spread over them.
    for (let m = 1; m <= 10; m++) {
      for (let p = 1; p <= 2; p++) {
        await cached.createSlot({ name: `slot${m}0${p}`, machine: `imap${m}`, ip: `127.0.${m}.${p}` }, 'bench');
      }
    }
    for (let s = 1; s <= 10; s++) {
      const other = (s % 10) + 1;
      await cached.createStore({ name: `store${s}`, slots: [`slot${s}01`, `slot${other}02`], preferredMaster: `slot${s}01` }, 'bench');
    }
    const names = Array.from({ length: USERS }, (_, i) => `user${i}@example.com`);
    const pipe = raw.pipeline();
    for (const [i, name] of names.entries()) {
      // Same content the scripts would write; bulk-loaded so the set-up does not dominate the run.
      pipe.hset(`${prefix}{dir}:users`, name, JSON.stringify({ name, store: `store${(i % 10) + 1}`, state: 'active' }));
      pipe.set(`${prefix}bench:${name}`, JSON.stringify({ name, store: `store${(i % 10) + 1}`, state: 'active' }));
    }
    await pipe.exec();
    const pick = (i: number) => names[i % USERS] as string;
    if ((await uncached.resolve(pick(1)))?.master.name !== 'slot201') throw new Error('bench layout broken');

    // Warm-up (JIT, connections, script cache), then interleave so drift hits every variant alike.
    await measure((i) => raw.get(`${prefix}bench:${pick(i)}`));
    await measure((i) => uncached.resolve(pick(i)));
    for (const n of names) await cached.resolve(n);

    await raw.config('RESETSTAT');
    const results = { get: [] as number[], uncached: [] as number[], cached: [] as number[] };
    for (let round = 0; round < ROUNDS; round++) {
      results.get.push(await measure((i) => raw.get(`${prefix}bench:${pick(i)}`)));
      results.uncached.push(await measure((i) => uncached.resolve(pick(i))));
      results.cached.push(await measure((i) => cached.resolve(pick(i))));
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
    const get = median(results.get);
    const unc = median(results.uncached);
    const cac = median(results.cached);
    console.log(`raw Redis GET (reference):     ${fmt(get).padStart(12)} /s   rounds: ${results.get.map(fmt).join(', ')}`);
    console.log(`uncached resolve() (1 script): ${fmt(unc).padStart(12)} /s   rounds: ${results.uncached.map(fmt).join(', ')}`
      + `   = ${(unc / get).toFixed(2)} x GET (target >= 0.50) ${unc >= 0.5 * get ? 'PASS' : 'FAIL'}`);
    // Redis' own time per call: the script's server-side cost, unaffected by how loaded the host is.
    const stats = await raw.info('commandstats');
    const usec = (cmd: string) => /usec_per_call=([\d.]+)/.exec(stats.split('\n').find((l) => l.startsWith(`cmdstat_${cmd}:`)) ?? '')?.[1] ?? '?';
    console.log(`redis server time per call:   GET ${usec('get')} µs, resolve script (EVALSHA) ${usec('evalsha')} µs`);
    console.log(`cached resolve():              ${fmt(cac).padStart(12)} /s   rounds: ${results.cached.map(fmt).join(', ')}`
      + `   (target > 1,000,000) ${cac > 1_000_000 ? 'PASS' : 'FAIL'}`);
  } finally {
    raw.disconnect();
    await cached.close();
    await uncached.close();
    await redis.close();
  }
}

await main();
