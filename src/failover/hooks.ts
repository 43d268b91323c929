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

/**
 * Runs one hook; resolves when the hook's own process exits, not when its output pipes close: a
 * hook may start something that outlives it (a rolling sync_client, an IP mover), which inherits
 * the pipes. Such a process is left running (only a hook past its timeout, or interrupted, has its
 * process group killed); the pipes are unref'd so it cannot keep the failover waiting, and it
 * should send its output elsewhere (README: systemd-run, or `setsid … >/dev/null 2>&1 &`).
 */
export function runHook(argv: string[], timeoutMs: number, signal?: AbortSignal): Promise<HookResult> {
  const started = Date.now();
  return new Promise((resolve) => {
    let output = '';
    const keep = (chunk: Buffer) => { output = (output + chunk.toString('utf8')).slice(-OUTPUT_KEEP); };
    const child = spawn(argv[0] as string, argv.slice(1), { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    let timedOut = false;
    let interrupted = false;
    const killGroup = () => {
      try {
        process.kill(-(child.pid as number), 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup();
    }, timeoutMs);
    const onAbort = () => {
      interrupted = true;
      killGroup();
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    let settled = false;
    const done = (exitCode: number | null, sig: string | null, extra = '') => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      // What it wrote up to now is in; a background child's later output must not hold us.
      setImmediate(() => {
        // They are sockets (pipes) underneath: unref so they cannot keep this process alive.
        (child.stdout as unknown as { unref?: () => void }).unref?.();
        (child.stderr as unknown as { unref?: () => void }).unref?.();
        const note = interrupted ? '\ninterrupted (Ctrl-C)' : '';
        resolve({ argv, ok: !timedOut && !interrupted && exitCode === 0, exitCode, signal: sig, timedOut, ms: Date.now() - started,
          output: (output + extra + note).slice(-OUTPUT_KEEP) });
      });
    };
    child.once('error', (err) => done(null, null, `\n${err.message}`));
    child.once('exit', (code, sig) => done(code, sig));
  });
}

/** Runs hooks in order, stopping at the first failure (or at `signal`: the running hook is killed). */
export async function runHooks(hooks: readonly (readonly string[])[], vars: HookVars, timeoutMs: number,
  signal?: AbortSignal): Promise<{ ok: boolean; results: HookResult[] }> {
  const results: HookResult[] = [];
  for (const h of hooks) {
    const r = await runHook(expandHook(h, vars), timeoutMs, signal);
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
