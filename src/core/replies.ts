/**
 * Every LMTP/SMTP answer storeroute gives is built here, by name, so that a reply code and its
 * RFC 3463 enhanced code are chosen once and the rest of the code speaks of *what happened*.
 * This is the data; which outcome or error gets which reply is decided in src/lmtp/reply.ts.
 *
 * Transient is the default: anything not known to be permanent is a 4xx, so postfix keeps the
 * message queued. Every 5xx constructor below names the permanent truth it stands for.
 */
export interface Reply {
  /** Three-digit reply code, e.g. 451. */
  readonly code: number;
  /** RFC 3463 enhanced status code, e.g. "4.3.0". */
  readonly enhanced: string;
  /** Human text, without code or enhanced code. */
  readonly text: string;
}

export function reply(code: number, enhanced: string, text: string): Reply {
  return { code, enhanced, text };
}

export function isPermanent(r: Reply): boolean {
  return r.code >= 500;
}

export function isSuccess(r: Reply): boolean {
  return r.code >= 200 && r.code < 300;
}

/** "451 4.3.0 text" — the line as it goes on the wire (without CRLF). */
export function formatReply(r: Reply): string {
  return `${r.code} ${r.enhanced} ${r.text}`;
}

const ENHANCED = /^([245])\.(\d{1,3})\.(\d{1,3})$/;

/** Parses a backend reply text "2.1.5 ok" into enhanced + text; falls back to a class default. */
export function parseReply(code: number, textWithEnhanced: string): Reply {
  const space = textWithEnhanced.indexOf(' ');
  const head = space === -1 ? textWithEnhanced : textWithEnhanced.slice(0, space);
  const m = ENHANCED.exec(head);
  if (m && m[1] === String(code)[0]) {
    return reply(code, head, space === -1 ? '' : textWithEnhanced.slice(space + 1));
  }
  const cls = Math.floor(code / 100);
  return reply(code, `${cls}.0.0`, textWithEnhanced);
}

/** The named replies. Keep one constructor per situation; tests pin these exact lines. */
export const replies = {
  // ---- success
  ok: (text = 'OK') => reply(250, '2.0.0', text),
  recipientOk: (text = 'Recipient OK') => reply(250, '2.1.5', text),
  senderOk: (text = 'Sender OK') => reply(250, '2.1.0', text),
  delivered: (text = 'Delivered') => reply(250, '2.0.0', text),

  // ---- permanent truths (each needs a reason and a test)
  /** The directory positively knows no such user. */
  noSuchUser: () => reply(550, '5.1.1', 'No such user here'),
  /** The recipient address is not a mailbox address at all. */
  badRecipientSyntax: (text = 'Bad recipient address syntax') => reply(501, '5.1.3', text),
  badSenderSyntax: (text = 'Bad sender address syntax') => reply(501, '5.1.7', text),
  /** Message larger than the configured SIZE limit. */
  messageTooBig: () => reply(552, '5.3.4', 'Message size exceeds fixed maximum message size'),
  /** The user is suspended by an operator: a policy decision, permanent until lifted. */
  userSuspended: () => reply(550, '5.2.1', 'Mailbox disabled, not accepting messages'),

  // ---- transient: the default for anything uncertain
  storeFailingOver: () => reply(451, '4.3.0', 'Mailbox store is failing over, try again later'),
  storeDown: () => reply(451, '4.3.0', 'Mailbox store is down, try again later'),
  userMoving: () => reply(451, '4.2.1', 'Mailbox is being moved, try again later'),
  slotNotUp: () => reply(451, '4.3.0', 'Mailbox server is not available, try again later'),
  directoryUnavailable: () => reply(451, '4.3.0', 'Directory temporarily unavailable, try again later'),
  backendUnreachable: () => reply(451, '4.4.1', 'Mailbox server unreachable, try again later'),
  backendTimeout: () => reply(451, '4.4.2', 'Mailbox server timed out, try again later'),
  backendLost: () => reply(451, '4.4.2', 'Connection to mailbox server lost, try again later'),
  /** Backend says 550 5.1.1 for a user the directory knows: the two disagree, which is transient. */
  directoryBackendDisagree: () =>
    reply(451, '4.3.0', 'Mailbox not found on its server, directory update pending; try again later'),
  tooManyRecipients: () => reply(452, '4.5.3', 'Too many recipients'),
  /**
   * The same mailbox twice in one transaction (addresses differing only in case): smtp-server keeps
   * one envelope entry for both, so a second 250 would leave postfix waiting for a final reply
   * that never comes. Deferred: postfix sends it again in its own transaction.
   */
  duplicateRecipient: () => reply(452, '4.5.3', 'Duplicate recipient in this transaction, send it again separately'),
  shuttingDown: () => reply(421, '4.3.2', 'Service shutting down, try again later'),
  internalError: () => reply(451, '4.3.0', 'Temporary internal error, try again later'),
  journalUnavailable: () => reply(451, '4.3.0', 'Replay journal unavailable, try again later'),
} as const;
