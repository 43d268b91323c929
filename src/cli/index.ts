#!/usr/bin/env node
/**
 * `storeroute`: the operator's command line. The program is built by `buildProgram(io)` so tests
 * run it in-process with captured output; it runs by itself only when this file is executed.
 */
import { readFileSync, realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command, Option } from 'commander';
import { processIo, reportError, EXIT, type CliIo } from './io.js';
import { registerAgent } from './agent.js';
import { registerCheck } from './check.js';
import { registerConfig } from './config.js';
import { registerDirectory } from './directory.js';
import { registerFailover } from './failover.js';
import { registerHistory } from './history.js';
import { registerMachine } from './machine.js';
import { registerReplay } from './replay.js';
import { registerServe } from './serve.js';
import { registerSlot } from './slot.js';
import { registerStatus } from './status.js';
import { registerStore } from './store.js';
import { registerUser } from './user.js';

/** The package version (package.json sits two levels up from both src/cli and dist/cli). */
function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

export function buildProgram(io: CliIo = processIo()): Command {
  const program = new Command('storeroute')
    .description('LMTP proxy, nginx auth_http service and replay journal for Cyrus IMAP clusters')
    .version(packageVersion(), '-V, --version')
    .addOption(new Option('--config <file>', 'config file (default: $STOREROUTE_CONFIG, else built-in defaults)'))
    .addOption(new Option('--redis <url>', 'use the Redis directory at this URL (overrides the config file)'))
    .addOption(new Option('--actor <name>', 'who to record in the audit history (default: cli:<user>@<host>)'))
    // Settings set here are inherited by every subcommand created afterwards.
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.stdout(s), writeErr: (s) => io.stderr(s) })
    .showHelpAfterError('(add --help for usage)');

  registerServe(program);
  registerAgent(program, io);
  registerCheck(program, io);
  registerDirectory(program, io);
  registerStore(program, io);
  registerSlot(program, io);
  registerUser(program, io);
  registerStatus(program, io);
  registerHistory(program, io);
  registerConfig(program, io);
  registerReplay(program, io);
  registerFailover(program, io);
  registerMachine(program, io);
  return program;
}

/** Runs one command line (without node and script) and returns its exit code; never throws. */
export async function runCli(args: string[], io: CliIo = processIo()): Promise<number> {
  const program = buildProgram(io);
  try {
    await program.parseAsync(args, { from: 'user' });
    return EXIT.ok;
  } catch (err) {
    return reportError(err, io);
  }
}

function executedDirectly(): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    // argv[1] is not a file we can resolve (e.g. `node -e`): then we were imported.
    return false;
  }
}

if (executedDirectly()) {
  // No process.exit(): `serve` returns once its listeners are up and must keep running, and
  // every other command closes what it opened, so the process ends when its work is done.
  process.exitCode = await runCli(process.argv.slice(2));
}
