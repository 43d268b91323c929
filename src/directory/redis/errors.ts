/**
 * The one place where a Redis failure becomes a typed directory error. Scripts return named
 * errors (see scripts/common.lua); everything else (connection refused, timeout, a closed client,
 * a Redis that is loading) means the directory cannot answer: DirectoryUnavailableError.
 */
import {
  DirectoryConflictError, DirectoryNotFoundError, DirectoryRuleError, DirectoryUnavailableError,
} from '../../core/errors.js';

const NAMED = /(?:^|\s)SR_(ARG|RULE|NOTFOUND|CONFLICT) (.*)$/s;

export function mapRedisError(err: unknown, what: string): Error {
  const message = err instanceof Error ? err.message : String(err);
  const m = NAMED.exec(message);
  if (m) {
    // Redis may append " script: <sha>, on @user_script:<line>." to a script's error.
    const detail = (m[2] as string).replace(/ script: [0-9a-f]+, on @user_script:\d+\.?$/, '');
    const [first = '', second = '', ...rest] = detail.split(' ');
    switch (m[1]) {
      case 'RULE':
        return new DirectoryRuleError(first, [second, ...rest].join(' '));
      case 'NOTFOUND':
        return new DirectoryNotFoundError(first as 'slot' | 'store' | 'user', [second, ...rest].join(' '));
      case 'CONFLICT':
        return new DirectoryConflictError(rest.join(' '), { expected: Number(first), actual: Number(second) });
      default:
        return new DirectoryRuleError('INVALID_ARGUMENT', detail);
    }
  }
  return new DirectoryUnavailableError(`directory ${what} failed: ${message}`, { cause: err });
}
