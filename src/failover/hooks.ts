/**
 * Site commands around the switch (`failover.hooks`): argv arrays, no shell, placeholders
 * replaced inside each element. Each runs in its own process group so a hook that hangs is
 * killed whole (with whatever it started) at `hooks.timeoutMs`.
 */
import { spawn } from 'node:child_process';

export type HookVars = Record<'store' | 'from' | 'to' | 'fromMachine' | 'toMachine' | 'fromIp' | 'toIp', string>;

export interface HookResult {
  argv: string[];
  ok: boolean;
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  ms: number;
  /** The last 2 KiB of stdout+stderr, for the operator. */
  output: string;
}

const OUTPUT_KEEP = 2048;

export function expandHook(argv: readonly string[], vars: HookVars): string[] {
  return argv.map((arg) => arg.replace(/\{([A-Za-z]+)\}/g, (whole, name: string) => {
    if (!(name in vars)) throw new Error(`hook ${JSON.stringify(argv)}: unknown placeholder ${whole}`);
    return vars[name as keyof HookVars];
  }));
}

export function runHook(argv: string[], timeoutMs: number): Promise<HookResult> {
  const started = Date.now();
  return new Promise((resolve) => {
    let output = '';
    const keep = (chunk: Buffer) => { output = (output + chunk.toString('utf8')).slice(-OUTPUT_KEEP); };
    const child = spawn(argv[0] as string, argv.slice(1), { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-(child.pid as number), 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    }, timeoutMs);
    const done = (exitCode: number | null, signal: string | null, extra = '') => {
      clearTimeout(timer);
      resolve({ argv, ok: !timedOut && exitCode === 0, exitCode, signal, timedOut, ms: Date.now() - started, output: (output + extra).slice(-OUTPUT_KEEP) });
    };
    child.once('error', (err) => done(null, null, `\n${err.message}`));
    child.once('close', (code, signal) => done(code, signal));
  });
}

/** Runs hooks in order, stopping at the first failure. */
export async function runHooks(hooks: readonly (readonly string[])[], vars: HookVars, timeoutMs: number): Promise<{ ok: boolean; results: HookResult[] }> {
  const results: HookResult[] = [];
  for (const h of hooks) {
    const r = await runHook(expandHook(h, vars), timeoutMs);
    results.push(r);
    if (!r.ok) return { ok: false, results };
  }
  return { ok: true, results };
}

export function describeHook(r: HookResult): string {
  const how = r.timedOut ? `killed after ${r.ms} ms (timeout)` : r.exitCode !== null ? `exit ${r.exitCode}` : `signal ${r.signal ?? '?'}`;
  const out = r.output.trim();
  return `${JSON.stringify(r.argv)}: ${how}${out ? `: ${out.split('\n').slice(-3).join(' | ')}` : ''}`;
}
