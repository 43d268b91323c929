/**
 * The site bench/failover.ts fails over: two "machines" m1 and m2, `stores` stores S1..Sn, each
 * one real Cyrus slot per machine (m1s<i> on 127.50.1.<i>, the preferred master; m2s<i> on
 * 127.50.2.<i>), one user u<i> per store; a Redis directory, `storeroute serve` (LMTP proxy,
 * journal, admin API for replay) and one `storeroute agent` per machine, which start and keep the
 * rolling sync_clients (the harness's own replication is never started, so either direction works
 * after any failover). Built from the e2e stack's parts (test/e2e/stack/), which this only imports.
 *
 * The directory lets a slot belong to one store only, so n masters on m1 means 2n Cyrus slots.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { parse, stringify } from 'yaml';
import { CyrusSlot } from '../../test/e2e/stack/cyrus.js';
import { RedisDaemon } from '../../test/e2e/stack/redis.js';
import { Storeroute } from '../../test/e2e/stack/storeroute.js';
import { AgentProcess, killSyncClientsUnder } from '../../test/e2e/stack/agent.js';
import { makeWorkDir, removeWorkDir } from '../../test/e2e/stack/workdir.js';
import { parseConfig, type Config } from '../../src/config/index.js';
import { createDirectory, type Directory } from '../../src/directory/index.js';
import { readReplication, replicationOf } from '../../src/cli/replication.js';

export const DOMAIN = 'bench.test';
const ADMIN_PW = 'bench-failover-admin';
const TOKEN = 'bench-failover-agent-token-0123456789';

export interface SiteOptions {
  /** Loopback prefix of the slots (127.50: the e2e suites use 127.42–127.49). */
  net: string;
  stores: number;
  /** agent.intervalMs of both agents and of the operator's config. */
  intervalMs: number;
  /** The operator config's `failover` section. */
  failover: Record<string, unknown>;
}

export interface SiteStore {
  name: string;
  user: string;
  /** The preferred master, on m1. */
  home: CyrusSlot;
  /** Its other slot, on m2. */
  away: CyrusSlot;
}

/** Memory of a set of processes: resident (each counted whole) and proportional (shared pages split). */
export interface Memory {
  processes: number;
  rssKb: number;
  pssKb: number;
}

export class FailoverSite {
  readonly dir = makeWorkDir('bench-failover');
  readonly stores: SiteStore[] = [];
  readonly slots: CyrusSlot[] = [];
  readonly redis = new RedisDaemon(join(this.dir, 'redis'));
  #storeroute: Storeroute | null = null;
  agents: AgentProcess[] = [];
  /** The operator's config: the proxies' plus `agent` (token, interval) and `failover`. */
  operatorConfig = '';
  /** Wall time of starting every Cyrus slot at once (ms). */
  slotStartMs = 0;
  #directory: Directory | null = null;
  #agentConfig: Config['agent'] | null = null;
  readonly #opts: SiteOptions;

  constructor(opts: SiteOptions) {
    this.#opts = opts;
    const slot = (name: string, machine: string, ip: string) =>
      new CyrusSlot({ name, machine, ip, baseDir: this.dir, adminPassword: ADMIN_PW });
    for (let i = 1; i <= opts.stores; i++) {
      const home = slot(`m1s${i}`, 'm1', `${opts.net}.1.${i}`);
      const away = slot(`m2s${i}`, 'm2', `${opts.net}.2.${i}`);
      this.slots.push(home, away);
      this.stores.push({ name: `S${i}`, user: `u${i}`, home, away });
    }
  }

  /** `storeroute serve`, once started (its config needs the Redis port). */
  get storeroute(): Storeroute {
    if (!this.#storeroute) throw new Error('the site is not started');
    return this.#storeroute;
  }

  get directory(): Directory {
    if (!this.#directory) throw new Error('the site is not started');
    return this.#directory;
  }

  async start(): Promise<void> {
    await this.redis.start();
    const t0 = performance.now();
    await Promise.all(this.slots.map((s) => s.start()));
    this.slotStartMs = performance.now() - t0;
    for (const s of this.stores) await s.home.createMailbox(s.user);

    const sr = new Storeroute({ dir: join(this.dir, 'storeroute'), redisUrl: this.redis.url, domain: DOMAIN, cyrusAdminPassword: ADMIN_PW });
    this.#storeroute = sr;
    await sr.writeConfig();
    await sr.ok(['directory', 'apply', this.#directoryFile()]);
    await sr.start();

    const common = { dir: join(this.dir, 'agents'), directory: sr.directoryConfig, intervalMs: this.#opts.intervalMs, token: TOKEN };
    this.agents = ['m1', 'm2'].map((m) => new AgentProcess({ ...common, machine: m, slots: this.slots.filter((s) => s.machine === m) }));
    await Promise.all(this.agents.map((a) => a.start()));

    const config = parse(readFileSync(sr.configFile, 'utf8')) as Record<string, unknown>;
    this.operatorConfig = join(this.dir, 'operator.yaml');
    const operator = { ...config, log: { level: 'warn' }, agent: { intervalMs: this.#opts.intervalMs, token: TOKEN }, failover: this.#opts.failover };
    writeFileSync(this.operatorConfig, stringify(operator));
    const parsed = parseConfig(operator, this.operatorConfig);
    this.#agentConfig = parsed.agent;
    this.#directory = await createDirectory({ ...parsed.directory, cache: { ...parsed.directory.cache, enabled: false } },
      { logger: pino({ level: 'silent' }), metrics: new Registry() });
  }

  #directoryFile(): string {
    const file = join(this.dir, 'directory.yaml');
    writeFileSync(file, stringify({
      slots: Object.fromEntries(this.slots.map((s) => [s.name, { machine: s.machine, ip: s.ip }])),
      stores: Object.fromEntries(this.stores.map((s) => [s.name, { slots: [s.home.name, s.away.name], preferredMaster: s.home.name }])),
      users: Object.fromEntries(this.stores.map((s) => [s.user, s.name])),
    }));
    return file;
  }

  /**
   * Resolves once every store is active on the master `where` says, and its agent reports it
   * `caught-up` in a report measured after this call: the "replication caught up" before
   * each measured failover. `underLoad`: `lagging` counts too (pending below behindBytes, the
   * rolling client running and making progress), as the log is rarely empty while mail flows.
   */
  async settle(where: (s: SiteStore) => CyrusSlot, opts: { underLoad?: boolean; ms?: number } = {}): Promise<void> {
    const ms = opts.ms ?? 60_000;
    const good = opts.underLoad ? ['caught-up', 'lagging'] : ['caught-up'];
    const since = Date.now();
    const deadline = since + ms;
    let last = '';
    for (;;) {
      const snap = await this.directory.snapshot();
      const view = await readReplication(this.directory, this.#agentConfig as Config['agent']);
      const verdicts = new Map(replicationOf(view, snap).map((v) => [v.store, v]));
      const wrong = this.stores.flatMap((s) => {
        const st = snap.stores[s.name];
        const v = verdicts.get(s.name);
        const fresh = v?.reportAgeMs !== null && v?.reportAgeMs !== undefined && view.now - v.reportAgeMs >= since;
        if (st?.currentMaster !== where(s).name || st.state !== 'active') return [`${s.name} ${st?.state} on ${st?.currentMaster}`];
        if (!good.includes(v?.state ?? '') || !fresh) return [`${s.name} ${v?.state ?? '?'}${fresh ? '' : ' (no fresh report)'}`];
        return [];
      });
      if (wrong.length === 0) return;
      last = wrong.join(', ');
      if (Date.now() > deadline) throw new Error(`the site did not settle within ${ms} ms: ${last}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /**
   * Cyrus (every slot's master and what it forked: one process group each, whatever a service
   * calls itself) and the rolling sync_clients the agents started (under PID 1, found by -C), from /proc.
   */
  memory(): { cyrus: Memory; syncClients: Memory } {
    const cyrus: Memory = { processes: 0, rssKb: 0, pssKb: 0 };
    const sync: Memory = { processes: 0, rssKb: 0, pssKb: 0 };
    const masters = new Set(this.slots.map((s) => {
      try {
        return Number(readFileSync(join(s.dir, 'master.pid'), 'latin1').trim());
      } catch {
        return NaN;
      }
    }));
    for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
        const pgid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
        const argv = readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0');
        const into = masters.has(pgid) ? cyrus
          : argv[0]?.endsWith('sync_client') && argv[argv.indexOf('-C') + 1]?.startsWith(`${this.dir}/`) ? sync : null;
        if (!into) continue;
        const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, 'latin1');
        into.processes++;
        into.rssKb += Number(/^Rss:\s+(\d+)/m.exec(rollup)?.[1] ?? 0);
        into.pssKb += Number(/^Pss:\s+(\d+)/m.exec(rollup)?.[1] ?? 0);
      } catch {
        // Exited while being read.
      }
    }
    return { cyrus, syncClients: sync };
  }

  logs(): string {
    return [`--- storeroute ---\n${this.#storeroute?.logTail(40) ?? ''}`,
      ...this.agents.map((a) => `--- agent ${a.machine} ---\n${a.logTail(30)}`)].join('\n');
  }

  /** Everything this site started, each step on its own (one failing does not stop the rest). */
  async stop(): Promise<void> {
    const quiet = (f: () => Promise<unknown>) => f().catch((err: unknown) => console.log(`bench teardown: ${String(err)}`));
    await quiet(async () => this.#directory?.close());
    for (const a of this.agents) await quiet(() => a.stop());
    await quiet(() => killSyncClientsUnder(this.dir));
    await quiet(async () => this.#storeroute?.stop());
    await Promise.all(this.slots.map((s) => quiet(() => s.stop())));
    await quiet(() => killSyncClientsUnder(this.dir));
    await quiet(() => this.redis.stop());
    removeWorkDir(this.dir);
  }
}
