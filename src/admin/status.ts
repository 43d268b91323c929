/**
 * The one place where an error from an operator route becomes an HTTP status. The status says
 * whose move it is: 4xx, the request must change (the replay CLI exits 1, or 2 for 401/403);
 * 5xx, the same request may work later (the CLI exits 75, tempfail). So a failure on our side
 * (journal, backend, directory unreachable, a deadline) is never a 4xx.
 */
import { StorerouteError, type ErrorCode } from '../core/errors.js';

/** Typed over every ErrorCode: a new code does not compile until it has a status here. */
const STATUS: Record<ErrorCode, number> = {
  // The request is wrong: a field, a rule it would break, a file it names.
  CONFIG_INVALID: 400,
  DIRECTORY_RULE: 400,
  DIRECTORY_FILE_INVALID: 400,
  DIRECTORY_NOT_FOUND: 404,
  // Someone else changed it first (a compare-and-set lost): re-read, then decide again.
  DIRECTORY_CONFLICT: 409,
  // Our side or a peer's, and expected to pass.
  DIRECTORY_UNAVAILABLE: 503,
  JOURNAL_UNAVAILABLE: 503,
  BACKEND_UNREACHABLE: 503,
  BACKEND_TIMEOUT: 503,
  BACKEND_LOST: 503,
  DEADLINE_EXCEEDED: 503,
  // A backend that answered nonsense: the upstream is at fault, not the request.
  BACKEND_PROTOCOL: 502,
  // Damage on our side that retrying alone will not mend.
  JOURNAL_CORRUPT: 500,
};

export interface HttpError {
  status: number;
  body: { error: string; code: ErrorCode | 'INTERNAL_ERROR' };
}

/** The status for an error code (an unknown one: 500). */
export function httpStatusFor(code: ErrorCode): number {
  return (STATUS as Partial<Record<string, number>>)[code] ?? 500;
}

/** The answer for anything a route threw: ours by its code, anything else a 500. */
export function httpErrorFor(err: unknown): HttpError {
  const message = err instanceof Error ? err.message : String(err);
  if (err instanceof StorerouteError) return { status: httpStatusFor(err.code), body: { error: message, code: err.code } };
  return { status: 500, body: { error: message, code: 'INTERNAL_ERROR' } };
}
