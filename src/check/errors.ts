/**
 * The replication checker's errors: one class, a stable `code` per failure and the facts behind it
 * (which slot, which user), so the CLI maps codes to exit codes and tests key on codes, never on
 * message text.
 *
 * Not a StorerouteError: those stand for an LMTP/auth_http reply and every code there needs a wire
 * form at each edge; nothing the checker does is answered on those wires (same choice as agent/).
 */
export type CheckErrorCode =
  /** --store names a store the directory does not know. */
  | 'CHECK_UNKNOWN_STORE'
  /** --user names a user the directory does not know. */
  | 'CHECK_UNKNOWN_USER'
  /** An option that cannot work (no scope, rate ≤ 0, concurrency 0, …). */
  | 'CHECK_BAD_OPTION'
  /** Something the check needs is not configured (replay.imap.password, agent.token, an agent URL). */
  | 'CHECK_NOT_CONFIGURED'
  /** The user's store has no current master or no replica in the directory. */
  | 'STORE_INCOMPLETE'
  /** The slot refused the admin's login (wrong replay.imap.user/password, or no proxy right). */
  | 'IMAP_AUTH_FAILED'
  /** Nothing answers at the slot's IMAP address, or the connection was lost. */
  | 'IMAP_UNREACHABLE'
  /** The slot did not answer within replay.imap.timeoutMs. */
  | 'IMAP_TIMEOUT'
  /** The slot answered NO or BAD to a command the check needs. */
  | 'IMAP_REFUSED'
  /** The directory could not be read while the user was checked. */
  | 'DIRECTORY_UNAVAILABLE';

export class CheckError extends Error {
  readonly code: CheckErrorCode;
  readonly facts: Readonly<Record<string, unknown>>;
  constructor(code: CheckErrorCode, message: string, facts: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CheckError';
    this.code = code;
    this.facts = facts;
  }
}

/** Codes that are about the whole run's setup: the CLI answers them as usage errors (exit 2). */
export const SETUP_CODES: ReadonlySet<CheckErrorCode> = new Set([
  'CHECK_UNKNOWN_STORE', 'CHECK_UNKNOWN_USER', 'CHECK_BAD_OPTION', 'CHECK_NOT_CONFIGURED',
]);
