/**
 * Where the CLI writes and how a failure becomes an exit code. Commands never touch
 * process.stdout or process.exit themselves, so tests run the whole program in-process.
 */
import { CommanderError } from 'commander';
import {
  ConfigError, DirectoryConflictError, DirectoryFileError, DirectoryNotFoundError, DirectoryRuleError,
  DirectoryUnavailableError, StorerouteError,
} from '../core/errors.js';
import { DirectoryApplyIncompleteError } from '../directory/index.js';
import { DirectoryMissingError } from './context.js';

export interface CliInput extends NodeJS.ReadableStream {
  isTTY?: boolean;
  setRawMode?(mode: boolean): unknown;
}

export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
  stdin: CliInput;
  env: NodeJS.ProcessEnv;
}

export function processIo(): CliIo {
  return {
    stdout: (t) => void process.stdout.write(t),
    stderr: (t) => void process.stderr.write(t),
    stdin: process.stdin,
    env: process.env,
  };
}

/** Exit codes (sysexits-style where one fits). */
export const EXIT = {
  ok: 0,
  /** The directory refused: a rule, a lost compare-and-set, an unknown entry. */
  refused: 1,
  /** Bad command line, bad config file, bad directory file. */
  usage: 2,
  /** A bug: an error nobody expected. */
  internal: 70,
  /** EX_TEMPFAIL: the directory could not be reached; retrying later may work. */
  tempfail: 75,
} as const;

/** A command line that parses but makes no sense (e.g. `user move alice` without a store). */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** Ends the command with `exitCode`; whatever needed saying has been said. */
export class SilentExit extends Error {
  constructor(readonly exitCode: number) {
    super(`exit ${exitCode}`);
    this.name = 'SilentExit';
  }
}

/** Writes what went wrong to stderr (no stack trace for anything expected) and returns the exit code. */
export function reportError(err: unknown, io: CliIo): number {
  if (err instanceof CommanderError) {
    // Commander has already printed its message (help, usage error) through configureOutput.
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return EXIT.ok;
    return EXIT.usage;
  }
  if (err instanceof SilentExit) return err.exitCode;
  if (err instanceof UsageError || err instanceof DirectoryMissingError) {
    io.stderr(`error: ${err.message}\n`);
    return EXIT.usage;
  }
  if (err instanceof ConfigError || err instanceof DirectoryFileError) {
    // The message already lists every problem, one per line, with its path.
    io.stderr(`error: ${err.message}\n`);
    return EXIT.usage;
  }
  if (err instanceof DirectoryRuleError) {
    io.stderr(`refused [${err.rule}]: ${err.message}\n`);
    return EXIT.refused;
  }
  if (err instanceof DirectoryConflictError) {
    const detail = err.expected !== undefined || err.actual !== undefined
      ? ` (expected epoch ${err.expected ?? '?'}, actual ${err.actual ?? '?'})` : '';
    io.stderr(`conflict: ${err.message}${detail}\n`);
    return EXIT.refused;
  }
  if (err instanceof DirectoryNotFoundError) {
    io.stderr(`not found: ${err.message}\n`);
    return EXIT.refused;
  }
  if (err instanceof DirectoryUnavailableError) {
    io.stderr(`directory unavailable: ${err.message}\n`);
    return EXIT.tempfail;
  }
  if (err instanceof DirectoryApplyIncompleteError) {
    // Part of the file is in force; the message says how much and that re-running finishes it.
    io.stderr(`apply incomplete: ${err.message}\n`);
    return err.cause instanceof DirectoryUnavailableError ? EXIT.tempfail : EXIT.refused;
  }
  if (err instanceof StorerouteError) {
    io.stderr(`error [${err.code}]: ${err.message}\n`);
    return EXIT.refused;
  }
  // Unexpected: keep the stack, it is a bug report.
  io.stderr(`internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  return EXIT.internal;
}

/** Pretty JSON plus newline, for `--json`. */
export function printJson(io: CliIo, value: unknown): void {
  io.stdout(JSON.stringify(value, null, 2) + '\n');
}
