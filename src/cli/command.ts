/** Small helpers shared by the subcommand files. */
import { InvalidArgumentError, type Command } from 'commander';
import { actorOf, withDirectory, type DirectoryAccess, type GlobalOptions } from './context.js';
import type { CliIo } from './io.js';
import type { Config } from '../config/index.js';
import type { Directory } from '../directory/index.js';

export interface JsonOption {
  json?: boolean;
}

export function globalsOf(cmd: Command): GlobalOptions {
  return cmd.optsWithGlobals<GlobalOptions>();
}

/** Opens the directory named by the command's global options for the duration of `fn`. */
export function onDirectory<T>(io: CliIo, cmd: Command, fn: (d: Directory, config: Config) => Promise<T>,
  access: DirectoryAccess = {}): Promise<T> {
  return withDirectory(globalsOf(cmd), fn, io.env, access);
}

export function actorFor(io: CliIo, cmd: Command): string {
  return actorOf(globalsOf(cmd), io.env);
}

/** commander argParser for counts and epochs: a plain non-negative decimal integer. */
export function nonNegativeInt(value: string): number {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError(`expected a non-negative integer, got "${value}"`);
  const n = Number(value);
  if (!Number.isSafeInteger(n)) throw new InvalidArgumentError(`too large: "${value}"`);
  return n;
}

export function positiveInt(value: string): number {
  const n = nonNegativeInt(value);
  if (n === 0) throw new InvalidArgumentError('expected at least 1');
  return n;
}
