/**
 * One log line per recipient refused at RCPT (`lmtp_rcpt_rejected`), so an operator can see why
 * mail was refused or deferred, rate-limited so a flood (a dictionary attack on unknown users, a
 * directory outage tempfailing every recipient) cannot fill the disk: at most `perWindow` lines
 * per window; what is left out is counted and reported once, when that window ends
 * (`lmtp_rcpt_rejected_suppressed`). The metric storeroute_lmtp_rcpt_rejects_total counts every
 * one. State lives in the instance (one per server); nothing is module-level.
 */
import type { Logger } from 'pino';
import type { ErrorCode } from '../core/errors.js';
import { formatReply, type Reply } from '../core/replies.js';

/** Why a RCPT was not accepted: stable codes for logs (a StorerouteError's own code where one applies). */
export type RcptRejectReason =
  | 'RCPT_SYNTAX' | 'TOO_MANY_RECIPIENTS' | 'DUPLICATE_RECIPIENT' | 'NO_TRANSACTION'
  | 'UNKNOWN_USER' | 'USER_MOVING' | 'USER_SUSPENDED' | 'STORE_FAILING_OVER' | 'STORE_DOWN' | 'SLOT_NOT_UP'
  /** The backend refused MAIL FROM; every recipient routed to it gets that verdict. */
  | 'BACKEND_REFUSED_MAIL'
  /** The backend refused the RCPT (its own verdict, relayed). */
  | 'BACKEND_REFUSED_RCPT'
  /** The backend said 550 5.1.1 for a user the directory knows (answered 451). */
  | 'BACKEND_DISAGREES'
  | 'INTERNAL_ERROR'
  | ErrorCode;

export interface RcptRejection {
  /** Postfix's queue id (XFORWARD IDENT) or our session.transaction id. */
  queueId: string;
  recipient: string;
  reply: Reply;
  reason: RcptRejectReason;
  /** Human detail: the directory's or backend's error message, the slot that refused. */
  detail?: string;
}

export interface RejectLogOptions {
  perWindow: number;
  windowMs: number;
}

export class RcptRejectLog {
  readonly #logger: Logger;
  readonly #opts: RejectLogOptions;
  #windowStart = 0;
  #written = 0;
  #suppressed = 0;
  #timer: NodeJS.Timeout | null = null;

  constructor(logger: Logger, opts: RejectLogOptions) {
    this.#logger = logger;
    this.#opts = opts;
  }

  write(r: RcptRejection): void {
    const now = Date.now();
    if (now - this.#windowStart >= this.#opts.windowMs) {
      this.#windowStart = now;
      this.#written = 0;
    }
    if (this.#written < this.#opts.perWindow) {
      this.#written++;
      const { queueId, recipient, reply, reason, detail } = r;
      this.#logger.info({ queueId, recipient, reply: formatReply(reply), reason, ...(detail ? { detail } : {}) },
        'lmtp_rcpt_rejected');
      return;
    }
    this.#suppressed++;
    // Reported when this window ends, not at the next rejection: a flood that stops must still
    // say how much it hid. unref: a pending report never holds the process open.
    this.#timer ??= setTimeout(() => this.flush(), this.#windowStart + this.#opts.windowMs - now).unref();
  }

  /** Writes the count of lines left out since the last report, if any (also at close). */
  flush(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    if (this.#suppressed === 0) return;
    this.#logger.warn({ suppressed: this.#suppressed, perWindow: this.#opts.perWindow, windowMs: this.#opts.windowMs },
      'lmtp_rcpt_rejected_suppressed');
    this.#suppressed = 0;
  }
}
