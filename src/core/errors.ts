/**
 * Domain errors. Each has a stable `code` (for logs, metrics and tests) and the facts of what
 * happened (slot, kind, entry, expected/actual, problems, cause), never its wire form: each edge
 * maps a code to its own answer, in one place (LMTP replies: src/lmtp/reply.ts; admin HTTP
 * statuses: src/admin/status.ts; auth_http holds the login on any lookup failure:
 * src/auth/login.ts). An error that is not a StorerouteError is, by definition, transient.
 */

/**
 * Every code, in one list. The edges' tables are typed `Record<ErrorCode, …>` and a test walks
 * this list, so a new code cannot ship without a decision for its wire form at each edge.
 */
export const ERROR_CODES = [
  'DIRECTORY_UNAVAILABLE',
  'DIRECTORY_CONFLICT',
  'DIRECTORY_RULE',
  'DIRECTORY_NOT_FOUND',
  'DIRECTORY_FILE_INVALID',
  'CONFIG_INVALID',
  'BACKEND_UNREACHABLE',
  'BACKEND_TIMEOUT',
  'BACKEND_LOST',
  'BACKEND_PROTOCOL',
  'JOURNAL_CORRUPT',
  'JOURNAL_UNAVAILABLE',
  'DEADLINE_EXCEEDED',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

export class StorerouteError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** The directory could not answer (Redis down, timeout, cache bypass failed). Never "unknown user". */
export class DirectoryUnavailableError extends StorerouteError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('DIRECTORY_UNAVAILABLE', message, options);
  }
}

/** A compare-and-set lost: e.g. two failovers of one store raced and this one came second. */
export class DirectoryConflictError extends StorerouteError {
  readonly expected: number | undefined;
  readonly actual: number | undefined;
  constructor(message: string, detail: { expected?: number; actual?: number } = {}) {
    super('DIRECTORY_CONFLICT', message);
    this.expected = detail.expected;
    this.actual = detail.actual;
  }
}

/** A mutation would break an invariant (slot in two stores, two slots on one machine, …). */
export class DirectoryRuleError extends StorerouteError {
  /** Stable rule name, e.g. "SLOT_IN_STORE", "SAME_MACHINE", "TARGET_DOWN". */
  readonly rule: string;
  constructor(rule: string, message: string) {
    super('DIRECTORY_RULE', message);
    this.rule = rule;
  }
}

export class DirectoryNotFoundError extends StorerouteError {
  readonly kind: 'slot' | 'store' | 'user';
  readonly entry: string;
  constructor(kind: 'slot' | 'store' | 'user', entry: string) {
    super('DIRECTORY_NOT_FOUND', `${kind} ${JSON.stringify(entry)} does not exist`);
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
    super('DIRECTORY_FILE_INVALID', describeProblems(file, problems));
    this.file = file;
    this.problems = problems;
  }
}

export class ConfigError extends StorerouteError {
  readonly file: string;
  readonly problems: FileProblem[];
  constructor(file: string, problems: FileProblem[]) {
    super('CONFIG_INVALID', describeProblems(file, problems));
    this.file = file;
    this.problems = problems;
  }
}

export type BackendCode = 'BACKEND_UNREACHABLE' | 'BACKEND_TIMEOUT' | 'BACKEND_LOST' | 'BACKEND_PROTOCOL';

export class BackendError extends StorerouteError {
  declare readonly code: BackendCode;
  readonly slot: string;
  constructor(code: BackendCode, slot: string, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.slot = slot;
  }
}

/** The replay journal cannot take or give records (not writable, locked by another process, closed). */
export class JournalUnavailableError extends StorerouteError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('JOURNAL_UNAVAILABLE', message, options);
  }
}

export class DeadlineError extends StorerouteError {
  /** What ran out of time, and its budget. */
  readonly what: string;
  readonly ms: number;
  constructor(what: string, ms: number) {
    super('DEADLINE_EXCEEDED', `${what} did not finish within ${ms} ms`);
    this.what = what;
    this.ms = ms;
  }
}
