/**
 * Running `storeroute` in tests: in-process through runCli() with captured output, or as a real
 * child process (`tsx src/cli/index.ts`), the way an operator runs it.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { runCli } from '../../src/cli/index.js';
import type { CliIo } from '../../src/cli/io.js';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const fixture = (name: string) => join(root, 'test/cli/fixtures', name);

/** A temp dir with a config file for an embedded directory inside it. */
export function embeddedSite(): { dir: string; config: string; file: string } {
  const dir = mkdtempSync(join(tmpdir(), 'sr-cli-'));
  const file = join(dir, 'directory.json');
  const config = join(dir, 'storeroute.yaml');
  writeFileSync(config, `log: { level: silent }\ndirectory:\n  backend: embedded\n  embedded: { file: directory.json }\n`);
  return { dir, config, file };
}

/** A config file for a Redis directory under its own key prefix. */
export function redisSite(url: string, keyPrefix: string): { dir: string; config: string } {
  const dir = mkdtempSync(join(tmpdir(), 'sr-cli-'));
  const config = join(dir, 'storeroute.yaml');
  writeFileSync(config, `log: { level: silent }\ndirectory:\n  backend: redis\n  redis: { url: "${url}", keyPrefix: "${keyPrefix}" }\n`);
  return { dir, config };
}

export async function cli(args: string[], opts: { env?: NodeJS.ProcessEnv; stdin?: string } = {}): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const io: CliIo = {
    stdout: (t) => { stdout += t; },
    stderr: (t) => { stderr += t; },
    stdin: Readable.from(opts.stdin !== undefined ? [Buffer.from(opts.stdin)] : []),
    env: opts.env ?? {},
  };
  const code = await runCli(args, io);
  return { code, stdout, stderr };
}

/** The real thing: a child process, as from a shell. */
export function cliProcess(args: string[], opts: { env?: NodeJS.ProcessEnv; stdin?: string; cwd?: string } = {}): Promise<CliResult> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(join(root, 'node_modules/.bin/tsx'), [join(root, 'src/cli/index.ts'), ...args], {
      cwd: opts.cwd ?? root,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.on('error', reject);
    child.on('close', (code) => resolveRun({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(opts.stdin ?? '');
  });
}
