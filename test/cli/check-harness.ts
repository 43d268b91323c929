/**
 * Runs `storeroute … check replication …` in-process with captured output, on the real program
 * (buildProgram) with the `check` command registered the way src/cli/index.ts registers it.
 */
import { Readable } from 'node:stream';
import { buildProgram } from '../../src/cli/index.js';
import { registerCheck } from '../../src/cli/check.js';
import { reportError, EXIT, type CliIo } from '../../src/cli/io.js';
import type { CliResult } from './harness.js';

export async function checkCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const io: CliIo = { stdout: (t) => { stdout += t; }, stderr: (t) => { stderr += t; }, stdin: Readable.from([]), env };
  const program = buildProgram(io);
  if (!program.commands.some((c) => c.name() === 'check')) registerCheck(program, io);
  let code: number = EXIT.ok;
  try {
    await program.parseAsync(args, { from: 'user' });
  } catch (err) {
    code = reportError(err, io);
  }
  return { code, stdout, stderr };
}
