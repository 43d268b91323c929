/**
 * Every error code's wire form at each edge, pinned in one table: the LMTP reply line a client
 * sees (src/lmtp/reply.ts) and the admin API's HTTP status (src/admin/status.ts). A new code fails
 * here (and does not compile there) until someone decides both.
 */
import { describe, expect, it } from 'vitest';
import { ERROR_CODES, StorerouteError, type ErrorCode } from '../../src/core/errors.js';
import { formatReply, isPermanent } from '../../src/core/replies.js';
import { lmtpReply, lmtpReplyFor, LMTP_OUTCOMES, type LmtpOutcome } from '../../src/lmtp/index.js';
import { httpErrorFor, httpStatusFor } from '../../src/admin/index.js';

const INTERNAL = '451 4.3.0 Temporary internal error, try again later';

const WIRE: Record<ErrorCode, { lmtp: string; http: number }> = {
  DIRECTORY_UNAVAILABLE: { lmtp: '451 4.3.0 Directory temporarily unavailable, try again later', http: 503 },
  DIRECTORY_CONFLICT: { lmtp: INTERNAL, http: 409 },
  DIRECTORY_RULE: { lmtp: INTERNAL, http: 400 },
  DIRECTORY_NOT_FOUND: { lmtp: INTERNAL, http: 404 },
  DIRECTORY_FILE_INVALID: { lmtp: INTERNAL, http: 400 },
  CONFIG_INVALID: { lmtp: INTERNAL, http: 400 },
  BACKEND_UNREACHABLE: { lmtp: '451 4.4.1 Mailbox server unreachable, try again later', http: 503 },
  BACKEND_TIMEOUT: { lmtp: '451 4.4.2 Mailbox server timed out, try again later', http: 503 },
  BACKEND_LOST: { lmtp: '451 4.4.2 Connection to mailbox server lost, try again later', http: 503 },
  BACKEND_PROTOCOL: { lmtp: INTERNAL, http: 502 },
  JOURNAL_CORRUPT: { lmtp: INTERNAL, http: 500 },
  JOURNAL_UNAVAILABLE: { lmtp: '451 4.3.0 Replay journal unavailable, try again later', http: 503 },
  DEADLINE_EXCEEDED: { lmtp: INTERNAL, http: 503 },
};

const OUTCOMES: Record<LmtpOutcome, string> = {
  SHUTTING_DOWN: '421 4.3.2 Service shutting down, try again later',
  SENDER_SYNTAX: '501 5.1.7 Bad sender address syntax',
  RCPT_SYNTAX: '501 5.1.3 Bad recipient address syntax',
  TOO_MANY_RECIPIENTS: '452 4.5.3 Too many recipients',
  DUPLICATE_RECIPIENT: '452 4.5.3 Duplicate recipient in this transaction, send it again separately',
  NO_TRANSACTION: INTERNAL,
  UNKNOWN_USER: '550 5.1.1 No such user here',
  USER_MOVING: '451 4.2.1 Mailbox is being moved, try again later',
  USER_SUSPENDED: '550 5.2.1 Mailbox disabled, not accepting messages',
  STORE_FAILING_OVER: '451 4.3.0 Mailbox store is failing over, try again later',
  STORE_DOWN: '451 4.3.0 Mailbox store is down, try again later',
  SLOT_NOT_UP: '451 4.3.0 Mailbox server is not available, try again later',
  BACKEND_DISAGREES: '451 4.3.0 Mailbox not found on its server, directory update pending; try again later',
  MESSAGE_TOO_BIG: '552 5.3.4 Message size exceeds fixed maximum message size',
  INTERNAL_ERROR: INTERNAL,
};

describe('error codes on the wire', () => {
  it('the table covers exactly the codes there are', () => {
    expect(Object.keys(WIRE).sort()).toEqual([...ERROR_CODES].sort());
  });

  it.each(ERROR_CODES.map((code) => [code, WIRE[code]] as const))('%s → LMTP %j', (code, wire) => {
    const err = new StorerouteError(code, 'test');
    expect(formatReply(lmtpReply(code))).toBe(wire.lmtp);
    expect(formatReply(lmtpReplyFor(err))).toBe(wire.lmtp);
    // No error is a fact about the recipient: none may bounce mail.
    expect(isPermanent(lmtpReplyFor(err))).toBe(false);
    expect(httpStatusFor(code)).toBe(wire.http);
    expect(httpErrorFor(err)).toEqual({ status: wire.http, body: { error: 'test', code } });
  });

  it('anything that is not ours is transient on LMTP and a 500 on the admin API', () => {
    expect(formatReply(lmtpReplyFor(new Error('boom')))).toBe(INTERNAL);
    expect(formatReply(lmtpReplyFor('a string'))).toBe(INTERNAL);
    expect(formatReply(lmtpReplyFor(undefined))).toBe(INTERNAL);
    expect(httpErrorFor(new Error('boom'))).toEqual({ status: 500, body: { error: 'boom', code: 'INTERNAL_ERROR' } });
  });

  it('every named LMTP outcome has its pinned line; only the listed ones are permanent', () => {
    expect(Object.keys(OUTCOMES).sort()).toEqual([...LMTP_OUTCOMES].sort());
    for (const outcome of LMTP_OUTCOMES) expect(formatReply(lmtpReply(outcome)), outcome).toBe(OUTCOMES[outcome]);
    expect(LMTP_OUTCOMES.filter((o) => isPermanent(lmtpReply(o))).sort())
      .toEqual(['MESSAGE_TOO_BIG', 'RCPT_SYNTAX', 'SENDER_SYNTAX', 'UNKNOWN_USER', 'USER_SUSPENDED']);
  });
});
