/**
 * Running the configured Cyrus commands: templates become argv arrays (no shell ever sees them),
 * every run has a deadline, and a run past its deadline loses its whole process group.
 */
import { spawn } from 'node:child_process';
import { AgentError, errnoCode } from './errors.js';

export interface TemplateValues {
  conf?: string;
  slot?: string;
  peer?: string;
  file?: string;
  user?: string;
  target?: string;
  /** Replication channel; null/absent: the default one. */
  channel?: string | null;
}

const PLACEHOLDER = /\{([A-Za-z]+)\}/g;
const KNOWN = new Set(['conf', 'slot', 'peer', 'file', 'user', 'target']);

/**
 * Replaces placeholders element by element. A value never becomes more than one argument, a
 * value starting with `-` cannot be taken for an option where a whole element is a placeholder,
 * and an unknown placeholder or one with no value is refused before anything runs.
 */
export function expandTemplate(template: readonly string[], values: TemplateValues): string[] {
  const out: string[] = [];
  for (const element of template) {
    if (element === '{channelArgs}') {
      if (values.channel) out.push('-n', values.channel);
      continue;
    }
    const expanded = element.replace(PLACEHOLDER, (whole, name: string) => {
      if (!KNOWN.has(name)) {
        throw new AgentError('COMMAND_TEMPLATE', `unknown placeholder ${whole} in ${JSON.stringify(template)}`, { template, placeholder: name });
      }
      const value = values[name as keyof TemplateValues];
      if (typeof value !== 'string' || value === '') {
        throw new AgentError('COMMAND_TEMPLATE', `placeholder ${whole} has no value here`, { template, placeholder: name });
      }
      if (value.includes('\0') || value.includes('\n')) {
        throw new AgentError('COMMAND_TEMPLATE', `value for ${whole} holds a NUL or newline`, { template, placeholder: name });
      }
      if (element === whole && value.startsWith('-')) {
        throw new AgentError('COMMAND_TEMPLATE', `value for ${whole} starts with "-" and would read as an option`, { template, placeholder: name });
      }
      return value;
    });
    out.push(expanded);
  }
  return out;
}

export interface CommandResult {
  argv: string[];
  exitCode: number | null;
  signal: string | null;
  /** The last few KB of stdout+stderr (Cyrus tools print their complaints there). */
  output: string;
  durationMs: number;
}

const OUTPUT_KEEP = 4096;

/**
 * Runs argv to its exit. Resolves on `exit`, not `close`: a command that daemonizes (sync_client
 * -r) leaves a child holding our pipes, so `close` would never come (seen on 3.6.1). Rejects with
 * COMMAND_TIMEOUT (after SIGTERM, then SIGKILL 2 s later, to the whole process group) or
 * COMMAND_FAILED for a spawn error or a non-zero exit.
 */
export function runCommand(argv: string[], deadlineMs: number): Promise<CommandResult> {
  const [cmd, ...args] = argv;
  const started = Date.now();
  return new Promise((resolve, reject) => {
    if (!cmd) {
      reject(new AgentError('COMMAND_TEMPLATE', 'empty command', { argv }));
      return;
    }
    // Own process group: the deadline can kill what the command forked, and a signal to the agent
    // (Ctrl-C in a terminal) is not delivered to a rolling client we started.
    const child = spawn(cmd, args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const keep = (d: Buffer) => {
      output = (output + d.toString('utf8')).slice(-OUTPUT_KEEP);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    let timedOut = false;
    let killTimer: NodeJS.Timeout | undefined;
    const signalGroup = (sig: NodeJS.Signals) => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, sig);
      } catch {
        // The group is already empty: nothing left to stop.
      }
    };
    const deadline = setTimeout(() => {
      timedOut = true;
      signalGroup('SIGTERM');
      killTimer = setTimeout(() => signalGroup('SIGKILL'), 2_000);
    }, deadlineMs);
    const finish = () => {
      clearTimeout(deadline);
      clearTimeout(killTimer);
      child.stdout?.destroy();
      child.stderr?.destroy();
    };
    child.once('error', (err) => {
      finish();
      reject(new AgentError('COMMAND_FAILED', `cannot run ${cmd}: ${err.message}`, { argv, errno: errnoCode(err) }, { cause: err }));
    });
    child.once('exit', (code, signal) => {
      finish();
      const result: CommandResult = { argv, exitCode: code, signal, output: output.trim(), durationMs: Date.now() - started };
      if (timedOut) {
        reject(new AgentError('COMMAND_TIMEOUT', `${cmd} did not finish within ${deadlineMs} ms and was killed`, { ...result, deadlineMs }));
      } else if (code !== 0) {
        const how = code === null ? `was killed by ${signal}` : `exited ${code}`;
        reject(new AgentError('COMMAND_FAILED', `${cmd} ${how}${result.output ? `: ${result.output.slice(-300)}` : ''}`, { ...result }));
      } else {
        resolve(result);
      }
    });
  });
}
