/**
 * Domain errors. Each has a stable `code` (for logs, metrics and tests) and the wire reply it
 * stands for, so the LMTP edge and the auth_http edge map an error to an answer in one place.
 * An error that is not a StorerouteError is, by definition, transient (`internalError`).
 */
import { replies, type Reply } from './replies.js';

export type ErrorCode =
  | 'DIRECTORY_UNAVAILABLE'
  | 'DIRECTORY_CONFLICT'
  | 'DIRECTORY_RULE'
  | 'DIRECTORY_NOT_FOUND'
  | 'DIRECTORY_FILE_INVALID'
  | 'CONFIG_INVALID'
  | 'BACKEND_UNREACHABLE'
  | 'BACKEND_TIMEOUT'
  | 'BACKEND_LOST'
  | 'BACKEND_PROTOCOL'
  | 'JOURNAL_CORRUPT'
  | 'JOURNAL_UNAVAILABLE'
  | 'DEADLINE_EXCEEDED';

export class StorerouteError extends Error {
  readonly code: ErrorCode;
  readonly reply: Reply;
  constructor(code: ErrorCode, message: string, reply: Reply, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.reply = reply;
  }
}

/** The directory could not answer (Redis down, timeout, cache bypass failed). Never "unknown user". */
export class DirectoryUnavailableError extends StorerouteError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('DIRECTORY_UNAVAILABLE', message, replies.directoryUnavailable(), options);
  }
}

/** A compare-and-set lost: e.g. two failovers of one store raced and this one came second. */
export class DirectoryConflictError extends StorerouteError {
  readonly expected: number | undefined;
  readonly actual: number | undefined;
  constructor(message: string, detail: { expected?: number; actual?: number } = {}) {
    super('DIRECTORY_CONFLICT', message, replies.internalError());
    this.expected = detail.expected;
    this.actual = detail.actual;
  }
}

/** A mutation would break an invariant (slot in two stores, two slots on one machine, …). */
export class DirectoryRuleError extends StorerouteError {
  /** Stable rule name, e.g. "SLOT_IN_STORE", "SAME_MACHINE", "TARGET_DOWN". */
  readonly rule: string;
  constructor(rule: string, message: string) {
    super('DIRECTORY_RULE', message, replies.internalError());
    this.rule = rule;
  }
}

export class DirectoryNotFoundError extends StorerouteError {
  readonly kind: 'slot' | 'store' | 'user';
  readonly entry: string;
  constructor(kind: 'slot' | 'store' | 'user', entry: string) {
    super('DIRECTORY_NOT_FOUND', `${kind} ${JSON.stringify(entry)} does not exist`, replies.internalError());
    this.kind = kind;
    this.entry = entry;
  }
}

/** One problem found in a directory or config file: where, and which rule. */
export interface FileProblem {
  /** Dotted path inside the file, e.g. "stores.store1.currentMaster". */
  path: string;
  message: string;
}

function describeProblems(file: string, problems: FileProblem[]): string {
  return `${file}: ${problems.length} problem(s)\n` + problems.map((p) => `  ${p.path}: ${p.message}`).join('\n');
}

export class DirectoryFileError extends StorerouteError {
  readonly file: string;
  readonly problems: FileProblem[];
  constructor(file: string, problems: FileProblem[]) {
    super('DIRECTORY_FILE_INVALID', describeProblems(file, problems), replies.internalError());
    this.file = file;
    this.problems = problems;
  }
}

export class ConfigError extends StorerouteError {
  readonly file: string;
  readonly problems: FileProblem[];
  constructor(file: string, problems: FileProblem[]) {
    super('CONFIG_INVALID', describeProblems(file, problems), replies.internalError());
    this.file = file;
    this.problems = problems;
  }
}

export class BackendError extends StorerouteError {
  readonly slot: string;
  constructor(code: 'BACKEND_UNREACHABLE' | 'BACKEND_TIMEOUT' | 'BACKEND_LOST' | 'BACKEND_PROTOCOL',
    slot: string, message: string, options?: { cause?: unknown }) {
    const r = code === 'BACKEND_UNREACHABLE' ? replies.backendUnreachable()
      : code === 'BACKEND_TIMEOUT' ? replies.backendTimeout()
      : code === 'BACKEND_LOST' ? replies.backendLost()
      : replies.internalError();
    super(code, message, r, options);
    this.slot = slot;
  }
}

export class DeadlineError extends StorerouteError {
  constructor(what: string, ms: number) {
    super('DEADLINE_EXCEEDED', `${what} did not finish within ${ms} ms`, replies.internalError());
  }
}

/** The reply for any thrown value: a StorerouteError's own, else a transient internal error. */
export function replyFor(err: unknown): Reply {
  return err instanceof StorerouteError ? err.reply : replies.internalError();
}
