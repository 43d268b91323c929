/**
 * `node --max-semi-space-size=1 --single-threaded dist/cli/agent-main.js [--config FILE] [--redis URL]`:
 * the slot agent's own entry, what operators run under systemd (README, "Replication: the slot
 * agent"). It does what `storeroute agent` does, but loads only the agent's module tree: index.ts
 * registers every command (commander, the proxy through main.ts, the failover runner, the
 * checker, imapflow …), and in a process that lives for months that code is resident for nothing
 * (issue #13: agent RSS; bench/agent.ts measured 120.5 MB peak through index.ts, 105.6 MB through
 * this entry, 77.7 MB with AGENT_NODE_OPTIONS). No shebang and no package bin on purpose: run
 * without those node options it works but keeps ~28 MB more, so the one documented way to run it
 * is the node command line that carries them.
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { AGENT_NODE_OPTIONS, runAgent } from './agent.js';
import { EXIT, processIo, reportError, type CliIo } from './io.js';

const USAGE = `usage: node ${AGENT_NODE_OPTIONS.join(' ')} dist/cli/agent-main.js [--config FILE] [--redis URL]\n`
  + '  --config FILE  config file (default: $STOREROUTE_CONFIG, else built-in defaults)\n'
  + '  --redis URL    use the Redis directory at this URL (overrides the config file)\n';

/** Runs the agent with `args` (without node and script); resolves with the exit code once it stops. */
export async function runAgentMain(args: string[], io: CliIo = processIo()): Promise<number> {
  let values: { config?: string | undefined; redis?: string | undefined; help?: boolean | undefined };
  try {
    ({ values } = parseArgs({
      args, strict: true, allowPositionals: false,
      options: { config: { type: 'string' }, redis: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    }));
  } catch (err) {
    io.stderr(`error: ${(err as Error).message}\n${USAGE}`);
    return EXIT.usage;
  }
  if (values.help) {
    io.stdout(USAGE);
    return EXIT.ok;
  }
  try {
    await runAgent({ ...(values.config !== undefined ? { config: values.config } : {}),
      ...(values.redis !== undefined ? { redis: values.redis } : {}) }, io);
    return EXIT.ok;
  } catch (err) {
    return reportError(err, io);
  }
}

function executedDirectly(): boolean {
  try {
    return process.argv[1] !== undefined && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false; // argv[1] is not a file (`node -e`): imported
  }
}

if (executedDirectly()) process.exitCode = await runAgentMain(process.argv.slice(2));
