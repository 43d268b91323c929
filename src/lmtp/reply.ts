/**
 * The one place where an outcome becomes the LMTP reply a client sees. Everything else in lmtp/
 * speaks of what happened (an error's code, a named outcome such as UNKNOWN_USER, a backend's
 * verdict) and asks here for the answer; src/core/replies.ts holds the replies themselves, as data.
 *
 * Transient is the default: an error that is not a StorerouteError, and every code below that is
 * not known to be permanent, is a 4xx so postfix keeps the message queued. Each 5xx here names the
 * permanent truth it stands for and is pinned by a wire test (test/lmtp/reply-rules.test.ts;
 * test/core/error-codes.test.ts pins the whole table).
 *
 * Named outcomes (not errors):
 *   unknown user                                  550 5.1.1  (the only "not found" that is permanent)
 *   suspended user                                550 5.2.1  (an operator's explicit decision, route.ts)
 *   message over the SIZE limit                   552 5.3.4
 *   bad sender / recipient syntax                 501 5.1.7 / 501 5.1.3
 *   store failing-over / down, master not up      451 4.3.0
 *   user moving                                   451 4.2.1
 *   backend 550 5.1.1 for a user we know          451 4.3.0  (directory and backend disagree)
 *   too many / duplicate recipients               452 4.5.3
 *   shutting down                                 421 4.3.2
 */
import { StorerouteError, type ErrorCode } from '../core/errors.js';
import { replies, type Reply } from '../core/replies.js';

/** What happened to a command that is not an error: each has one reply. Stable names (logs). */
export const LMTP_OUTCOMES = [
  'SHUTTING_DOWN',
  'SENDER_SYNTAX', 'RCPT_SYNTAX', 'TOO_MANY_RECIPIENTS', 'DUPLICATE_RECIPIENT',
  /** A command arrived in a session state that has no transaction for it (a bug: ours or smtp-server's). */
  'NO_TRANSACTION',
  'UNKNOWN_USER', 'USER_MOVING', 'USER_SUSPENDED', 'STORE_FAILING_OVER', 'STORE_DOWN', 'SLOT_NOT_UP',
  /** The backend said 550 5.1.1 for a user the directory knows. */
  'BACKEND_DISAGREES',
  'MESSAGE_TOO_BIG',
  /** Anything we cannot vouch for: the default. */
  'INTERNAL_ERROR',
] as const;

export type LmtpOutcome = (typeof LMTP_OUTCOMES)[number];

/**
 * The table. Typed over every outcome and every ErrorCode, so a new one does not compile until it
 * has a reply here. No error code is permanent: an error is something that went wrong on our side
 * or a backend's, never a fact about the recipient.
 */
const REPLIES: Record<LmtpOutcome | ErrorCode, () => Reply> = {
  // ---- named outcomes
  SHUTTING_DOWN: replies.shuttingDown,
  SENDER_SYNTAX: replies.badSenderSyntax,
  RCPT_SYNTAX: replies.badRecipientSyntax,
  TOO_MANY_RECIPIENTS: replies.tooManyRecipients,
  DUPLICATE_RECIPIENT: replies.duplicateRecipient,
  NO_TRANSACTION: replies.internalError,
  UNKNOWN_USER: replies.noSuchUser,
  USER_MOVING: replies.userMoving,
  USER_SUSPENDED: replies.userSuspended,
  STORE_FAILING_OVER: replies.storeFailingOver,
  STORE_DOWN: replies.storeDown,
  SLOT_NOT_UP: replies.slotNotUp,
  BACKEND_DISAGREES: replies.directoryBackendDisagree,
  MESSAGE_TOO_BIG: replies.messageTooBig,
  INTERNAL_ERROR: replies.internalError,
  // ---- error codes
  DIRECTORY_UNAVAILABLE: replies.directoryUnavailable,
  DIRECTORY_CONFLICT: replies.internalError,
  DIRECTORY_RULE: replies.internalError,
  DIRECTORY_NOT_FOUND: replies.internalError,
  DIRECTORY_FILE_INVALID: replies.internalError,
  CONFIG_INVALID: replies.internalError,
  BACKEND_UNREACHABLE: replies.backendUnreachable,
  BACKEND_TIMEOUT: replies.backendTimeout,
  BACKEND_LOST: replies.backendLost,
  BACKEND_PROTOCOL: replies.internalError,
  JOURNAL_CORRUPT: replies.internalError,
  JOURNAL_UNAVAILABLE: replies.journalUnavailable,
  DEADLINE_EXCEEDED: replies.internalError,
};

/** The reply for a named outcome or an error code (an unknown name: the transient default). */
export function lmtpReply(what: LmtpOutcome | ErrorCode): Reply {
  const make = (REPLIES as Partial<Record<string, () => Reply>>)[what] ?? replies.internalError;
  return make();
}

/** The reply for any thrown value: by its code when it is ours, else a transient internal error. */
export function lmtpReplyFor(err: unknown): Reply {
  return err instanceof StorerouteError ? lmtpReply(err.code) : replies.internalError();
}

/** The stable name of why a command failed, for logs: an error's code, else INTERNAL_ERROR. */
export function outcomeCodeOf(err: unknown): ErrorCode | 'INTERNAL_ERROR' {
  return err instanceof StorerouteError ? err.code : 'INTERNAL_ERROR';
}

/**
 * A backend's verdict, as relayed to the client: as is (its exact enhanced code), except a
 * "550 5.1.1" for a user the directory knows, which means the two disagree: transient.
 */
export function relayBackendReply(r: Reply): Reply {
  if (r.code === 550 && r.enhanced === '5.1.1') return lmtpReply('BACKEND_DISAGREES');
  return r;
}

// ---- handing a reply to smtp-server (the client's side of the wire)

/** A refusal as smtp-server wants it: an Error carrying the code; the text starts with the enhanced code. */
export function smtpServerError(r: Reply): Error {
  return Object.assign(new Error(`${r.enhanced} ${r.text}`), { responseCode: r.code });
}

/** The text smtp-server sends after the code (our patched `send` keeps its enhanced code: smtp-patch.ts). */
export function smtpServerText(r: Reply): string {
  return `${r.enhanced} ${r.text}`;
}

/** One recipient's final reply after DATA, as smtp-server's onData callback takes it. */
export function smtpServerFinal(r: Reply): string | Error {
  return r.code < 300 ? `${r.enhanced} ${r.text || 'OK'}` : smtpServerError(r);
}

/**
 * The refusal when more clients are connected than maxClients: smtp-server's own line, kept as it
 * was (no enhanced code; sent before the greeting, with the host name first).
 */
export function tooManyClients(hostname: string): { code: number; text: string } {
  return { code: 421, text: `${hostname} Too many connected clients, try again in a moment` };
}
