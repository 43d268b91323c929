/**
 * What bench/failover.ts drives the site with, as an operator would: the built CLI, one process
 * per command (`node dist/cli/index.js … --config operator.yaml`), stdout read line by line and
 * each line timestamped when it is read; the by-hand failover as a shell script of primitives
 * would run it; and a paced LMTP sender that retries on 4xx like postfix.
 *
 * Times are `performance.now()` of this process (one monotonic clock for every figure), except
 * where the directory's wall clock must be compared (report ages in `status`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { sendLmtp } from '../../test/e2e/stack/mail.js';
import { CLI } from '../../test/e2e/stack/storeroute.js';

export interface CliRun {
  args: string[];
  code: number;
  stdout: string;
  stderr: string;
  startedAt: number;
  endedAt: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs storeroute commands against one config; remembers live children so a failed run can kill them. */
export class Operator {
  readonly #config: string;
  readonly #live = new Set<ChildProcess>();

  constructor(config: string) {
    this.#config = config;
  }

  /** One command to completion; `onLine` sees each stdout line with the time it was read. */
  run(args: string[], onLine?: (line: string, at: number) => void, timeoutMs = 120_000): Promise<CliRun> {
    const startedAt = performance.now();
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [CLI, '--config', this.#config, '--actor', 'bench', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      this.#live.add(child);
      let stdout = '';
      let stderr = '';
      let partial = '';
      child.stdout.on('data', (d: Buffer) => {
        const at = performance.now();
        stdout += d.toString();
        partial += d.toString();
        let i: number;
        while ((i = partial.indexOf('\n')) >= 0) {
          onLine?.(partial.slice(0, i), at);
          partial = partial.slice(i + 1);
        }
      });
      child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      child.once('error', (err) => {
        clearTimeout(timer);
        this.#live.delete(child);
        reject(err);
      });
      child.once('close', (code) => {
        clearTimeout(timer);
        this.#live.delete(child);
        resolve({ args, code: code ?? -1, stdout, stderr, startedAt, endedAt: performance.now() });
      });
    });
  }

  /** Like run() but throws with the output on a non-zero exit. */
  async ok(args: string[], onLine?: (line: string, at: number) => void): Promise<CliRun> {
    const r = await this.run(args, onLine);
    if (r.code !== 0) throw new Error(`storeroute ${args.join(' ')} exited ${r.code}\n${r.stdout}${r.stderr}`);
    return r;
  }

  killAll(): void {
    for (const c of this.#live) c.kill('SIGKILL');
  }
}

/** Phase events of one `--json` run as they were read: phase → the time its ok event arrived, and its own ms. */
export interface PhaseTimes {
  /** When the first event (preflight's start) was read: the CLI's own start-up is before it. */
  firstAt: number | null;
  okAt: Map<string, number>;
  ms: Map<string, number>;
  result: Record<string, unknown> | null;
}

export function phaseListener(): { times: PhaseTimes; onLine: (line: string, at: number) => void } {
  const times: PhaseTimes = { firstAt: null, okAt: new Map(), ms: new Map(), result: null };
  return {
    times,
    onLine: (line, at) => {
      let e: Record<string, unknown>;
      try {
        e = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return;
      }
      times.firstAt ??= at;
      if (e.event === 'result') times.result = e;
      else if (e.event === 'phase' && e.status === 'ok' && typeof e.phase === 'string') {
        times.okAt.set(e.phase, at);
        times.ms.set(e.phase, Number(e.ms));
      }
    },
  };
}

export interface ByHandSettings {
  holdMs: number;
  pollMs: number;
  replayWindowMs: number;
}

export interface ByHandRun {
  startedAt: number;
  /** `store failover` returned. */
  switchAt: number;
  /** `store set-state S active` returned. */
  activeAt: number;
  /** The replay returned. */
  doneAt: number;
  statusPolls: number;
  /** Each step's wall time (ms), in order: show, hold (set-state), wait (hold + polls), switch, release, replay. */
  steps: Array<[string, number]>;
  replay: Record<string, unknown>;
}

/**
 * The README's "By hand", controlled path, as a script of primitives: read the epoch, hold, wait
 * the same `failover.holdMs` for deliveries already in DATA, poll `status --json` until the store
 * is `caught-up` in a report measured after the hold (an older one says nothing about the mail
 * that landed during it), compare-and-set failover, release, replay the same journal window the
 * command's verify replays.
 */
export async function failoverByHand(op: Operator, store: string, to: string, s: ByHandSettings): Promise<ByHandRun> {
  const startedAt = performance.now();
  const wallStart = Date.now();
  const shown = await op.ok(['store', 'show', store, '--json']);
  const show = JSON.parse(shown.stdout) as { store: { epoch: number } };
  const held = await op.ok(['store', 'set-state', store, 'failing-over']);
  await sleep(s.holdMs);
  const heldSince = Date.now();
  let statusPolls = 0;
  for (;;) {
    const askedAt = Date.now();
    const st = JSON.parse((await op.ok(['status', '--json'])).stdout) as { replication: Array<{ store: string; state: string; reportAgeMs: number | null }> };
    statusPolls++;
    const v = st.replication.find((r) => r.store === store);
    // The report was measured at (status's now − age) ≥ (askedAt − age): after the hold for sure.
    if (v?.state === 'caught-up' && v.reportAgeMs !== null && askedAt - v.reportAgeMs >= heldSince) break;
    await sleep(s.pollMs);
  }
  const failover = await op.ok(['store', 'failover', store, '--to', to, '--expect-epoch', String(show.store.epoch)]);
  const active = await op.ok(['store', 'set-state', store, 'active']);
  const since = new Date(wallStart - s.replayWindowMs).toISOString();
  const replay = await op.ok(['replay', '--store', store, '--since', since, '--json']);
  const ms = (r: CliRun) => Math.round(r.endedAt - r.startedAt);
  const steps: Array<[string, number]> = [['show', ms(shown)], ['hold', ms(held)], ['wait', Math.round(failover.startedAt - held.endedAt)],
    ['switch', ms(failover)], ['release', ms(active)], ['replay', ms(replay)]];
  return { startedAt, switchAt: failover.endedAt, activeAt: active.endedAt, doneAt: replay.endedAt, statusPolls, steps,
    replay: JSON.parse(replay.stdout) as Record<string, unknown> };
}

/**
 * Keeps mail flowing to one user: one LMTP transaction (new connection) straight to the proxy
 * every `paceMs`; a 4xx (or a dropped connection) is retried, same Message-ID, after `paceMs`,
 * as postfix would, only sooner. Records when each 250 was read.
 */
export class LmtpPump {
  readonly delivered: { at: number; messageId: string }[] = [];
  deferred = 0;
  readonly bounced: string[] = [];
  #stopping = false;
  #loop: Promise<void> | null = null;
  readonly #port: number;
  readonly #rcpt: string;
  readonly #paceMs: number;

  constructor(port: number, rcpt: string, paceMs: number) {
    this.#port = port;
    this.#rcpt = rcpt;
    this.#paceMs = paceMs;
  }

  start(tag: string): void {
    this.#loop = (async () => {
      for (let i = 0; !this.#stopping; i++) {
        const messageId = `${tag}.${i}.${Date.now()}@bench.test`;
        for (;;) {
          const final = await sendLmtp('127.0.0.1', this.#port, { from: 'sender@bench.test', to: [this.#rcpt], subject: `${tag} ${i}`, messageId })
            .then((t) => t.final[0] ?? t.rcpt[this.#rcpt] ?? t.replies[0] ?? '', (err: unknown) => `4xx ${String(err)}`);
          if (final.startsWith('250')) {
            this.delivered.push({ at: performance.now(), messageId });
            break;
          }
          if (final.startsWith('5')) {
            this.bounced.push(`${messageId}: ${final}`);
            break;
          }
          this.deferred++;
          if (this.#stopping) return;
          await sleep(this.#paceMs);
        }
        await sleep(this.#paceMs);
      }
    })();
  }

  /** The first delivery read after `t`, or null. */
  firstAfter(t: number): { at: number; messageId: string } | null {
    return this.delivered.find((d) => d.at > t) ?? null;
  }

  /** Resolves once a delivery after `t` exists (or rejects after `ms`). */
  async waitAfter(t: number, ms = 30_000): Promise<{ at: number; messageId: string }> {
    const until = performance.now() + ms;
    for (;;) {
      const d = this.firstAfter(t);
      if (d) return d;
      if (performance.now() > until) throw new Error(`no delivery for ${this.#rcpt} within ${ms} ms`);
      await sleep(10);
    }
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    await this.#loop;
  }
}
