import { DeadlineError } from './errors.js';

/**
 * Races `work` against a timer. On expiry rejects with `onTimeout()` (default a DeadlineError).
 * The work itself is not cancelled: callers that own a socket must close it on timeout.
 */
export function withDeadline<T>(work: Promise<T>, ms: number, what: string, onTimeout?: () => Error): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(onTimeout ? onTimeout() : new DeadlineError(what, ms)), ms);
    work.then(
      (v) => { clearTimeout(timer); resolve(v); },
      (e: unknown) => { clearTimeout(timer); reject(e); },
    );
  });
}
