/**
 * One client transaction (MAIL … RCPT … DATA) fanned out over backend sessions ("legs"), one leg
 * per backend slot. MAIL FROM goes to a backend once, when its first recipient arrives; each RCPT
 * is relayed to its store's master and the backend's verdict is the client's reply.
 */
import { BackendError, DeadlineError } from '../core/errors.js';
import { isSuccess, replies, type Reply } from '../core/replies.js';
import type { Route } from '../directory/model.js';
import type { BackendSession, BackendTarget } from './backend-client.js';
import { poolKey, type BackendPool } from './pool.js';
import { resolveRecipient, type RecipientRules } from './route.js';
import type { DirectoryReader } from '../directory/types.js';
import type { RcptRejectReason } from './reject-log.js';

export interface Leg {
  key: string;
  target: BackendTarget;
  session: BackendSession | null;
  /** Set once the leg cannot carry this transaction any further; its recipients get its reply. */
  failed: BackendError | DeadlineError | null;
  /** MAIL FROM refused: every recipient routed here gets this reply. */
  mailRefused: Reply | null;
  recipients: AcceptedRecipient[];
  /** True once the backend has answered the final dot for all its recipients. */
  finished: boolean;
  /** MAIL FROM sent pipelined with the first RCPT, verdict not yet read. */
  mail: Promise<Reply> | null;
  /** session.repliesReceived when this leg got its session. */
  repliesAtStart: number;
  /** The leg failed on a pooled session that acknowledged nothing of it: worth one retry. */
  diedUnused: boolean;
}

export interface AcceptedRecipient {
  /** As given in RCPT TO, domain in A-labels (what the backend receives). */
  address: string;
  /** smtp-server's envelope key: its (Unicode-domain) address, lower-cased. */
  key: string;
  route: Route;
  leg: Leg;
  reply: Reply;
}

export interface MailFrom {
  address: string;
  /** ESMTP parameters from the client's MAIL FROM (BODY, SIZE …), upper-case keys. */
  args: Record<string, string | boolean>;
}

export interface TransactionDeps {
  pool: BackendPool;
  directory: Pick<DirectoryReader, 'resolve'>;
  rules: RecipientRules;
  /** Max wait for a free pooled session. */
  acquireMs: number;
  /** Told when an abandoned RCPT attempt finishes and is dropped (a debug log line). */
  onStale?: (address: string, stage: string) => void;
  /** Told when a RCPT is retried on a fresh session because its pooled one was dead. */
  onRetry?: (slot: string, err: BackendError) => void;
}

/**
 * One RCPT's attempt. Its deadline may fire while it still runs (a slow directory, a slow
 * backend): the client has then had its 451 and has moved on, possibly to DATA. From then on
 * the attempt must not touch the transaction: it checks `abandoned` after every await.
 */
export class RcptAttempt {
  abandoned = false;
  /** The leg whose backend command this attempt has in flight, so abandoning can poison exactly it. */
  inflight: Leg | null = null;
  /** Why the RCPT was refused (set only then, for the lmtp_rcpt_rejected log line). */
  reason: RcptRejectReason | null = null;
  detail: string | undefined = undefined;

  refuse(reply: Reply, reason: RcptRejectReason, detail?: string): Reply {
    this.reason = reason;
    this.detail = detail;
    return reply;
  }

  /** A backend's verdict on MAIL or RCPT, relayed (see relayBackendReply). */
  refuseByBackend(r: Reply, stage: 'MAIL' | 'RCPT', slot: string): Reply {
    const relayed = relayBackendReply(r);
    return this.refuse(relayed, relayed !== r ? 'BACKEND_DISAGREES'
      : stage === 'MAIL' ? 'BACKEND_REFUSED_MAIL' : 'BACKEND_REFUSED_RCPT', `slot ${slot}`);
  }

  /** The leg failed (timeout, connection lost or closed by a 421): the error's 451. */
  refuseFailed(err: BackendError | DeadlineError): Reply {
    return this.refuse(err.reply, err.code, err.message);
  }
}

/** A backend's "550 5.1.1" for a user the directory knows means the two disagree: transient. */
export function relayBackendReply(r: Reply): Reply {
  if (r.code === 550 && r.enhanced === '5.1.1') return replies.directoryBackendDisagree();
  return r;
}

export class Transaction {
  readonly mailFrom: MailFrom;
  readonly legs = new Map<string, Leg>();
  readonly allLegs: Leg[] = [];
  /** Accepted recipients by smtp-server's envelope key (it keeps one entry per lower-cased address). */
  readonly accepted = new Map<string, AcceptedRecipient>();
  #released = false;
  /** DATA began: recipients are fixed, any RCPT work still running is stale. */
  #dataStarted = false;

  constructor(mailFrom: MailFrom, private readonly deps: TransactionDeps) {
    this.mailFrom = mailFrom;
  }

  /**
   * Routes, relays and answers one RCPT. `address` is what the backend gets (see address.ts),
   * `key` smtp-server's envelope key for it. Never throws: every outcome is a reply.
   */
  async addRecipient(address: string, key: string, attempt = new RcptAttempt()): Promise<Reply> {
    // smtp-server keeps one envelope entry per lower-cased address, so it will ask for one final
    // reply where postfix, having heard two 250s, waits for two: lock-step broken. The later one
    // is deferred instead (452 4.5.3: postfix sends it again in a new transaction).
    if (this.accepted.has(key)) return attempt.refuse(replies.duplicateRecipient(), 'DUPLICATE_RECIPIENT');

    const decision = await resolveRecipient(address, this.deps.directory, this.deps.rules);
    if (this.#stale(attempt)) return this.#dropStale(address, 'lookup');
    if (!decision.ok) return attempt.refuse(decision.reply, decision.code, decision.reason);
    const { master } = decision.route;
    const target: BackendTarget = { host: master.ip, port: master.lmtp, slot: master.name };
    const first = await this.#relay(target, decision.route, address, key, attempt, false);
    if (!(first instanceof BackendError)) return first;
    // A pooled session that died while idle (the backend restarted, a NAT or firewall forgot it)
    // is only found out by using it. Nothing of this transaction was acknowledged on it, so the
    // RCPT is sent again once, on a new session, instead of tempfailing the recipient.
    this.deps.onRetry?.(target.slot, first);
    const second = await this.#relay(target, decision.route, address, key, attempt, true);
    return second instanceof BackendError ? attempt.refuseFailed(second) : second;
  }

  /**
   * MAIL (once per leg) and RCPT on the leg for `target`. A BackendError result: the leg died on
   * a reused session before acknowledging anything (only when `fresh` is false): retry.
   */
  async #relay(target: BackendTarget, route: Route, address: string, key: string, attempt: RcptAttempt,
    fresh: boolean): Promise<Reply | BackendError> {
    const leg = await this.#legFor(target, attempt, fresh);
    if (this.#stale(attempt)) return this.#dropStale(address, 'session');
    if (leg.mailRefused) return attempt.refuseByBackend(leg.mailRefused, 'MAIL', target.slot);
    if (leg.failed && leg.diedUnused && !fresh && leg.failed instanceof BackendError) return leg.failed;
    if (leg.failed || !leg.session) return attempt.refuseFailed(leg.failed ?? new BackendError('BACKEND_LOST', target.slot, 'no session'));
    attempt.inflight = leg;
    try {
      const rcptReply = leg.session.rcpt(address);
      rcptReply.catch(() => undefined); // handled below; this only keeps a failed MAIL from orphaning it
      if (leg.mail) {
        const mail = await leg.mail;
        leg.mail = null;
        if (this.#stale(attempt)) return this.#dropStale(address, 'MAIL');
        if (!isSuccess(mail)) {
          leg.mailRefused = mail;
          await rcptReply.catch(() => undefined); // its "503 need MAIL" is consumed, not relayed
          return attempt.refuseByBackend(mail, 'MAIL', target.slot);
        }
      }
      const r = await rcptReply;
      // abandon() failed the leg and dropped its session: the backend's verdict is moot.
      if (this.#stale(attempt)) return this.#dropStale(address, 'RCPT');
      if (!isSuccess(r)) return attempt.refuseByBackend(r, 'RCPT', target.slot);
      const rcpt: AcceptedRecipient = { address, key, route, leg, reply: r };
      this.accepted.set(key, rcpt);
      leg.recipients.push(rcpt);
      return r;
    } catch (err) {
      if (this.#stale(attempt)) return this.#dropStale(address, 'RCPT');
      const failed = this.#legFailed(leg, err);
      if (leg.diedUnused && !fresh && failed instanceof BackendError) return failed;
      return attempt.refuseFailed(failed);
    } finally {
      attempt.inflight = null;
    }
  }

  /**
   * The RCPT deadline fired (the client has its 451). The attempt stops at its next step; a
   * backend command it has in flight may still be answered, and a late "250" we did not relay
   * would desynchronise the final replies, so that leg is failed and its session dropped.
   */
  abandon(attempt: RcptAttempt, err: DeadlineError): void {
    attempt.abandoned = true;
    const leg = attempt.inflight;
    if (!leg) return;
    leg.failed ??= err;
    if (leg.session) this.deps.pool.discard(leg.session);
    if (this.legs.get(leg.key) === leg) this.legs.delete(leg.key);
  }

  /** DATA begins: from here on a RCPT attempt still running (abandoned by its deadline) is a no-op. */
  startData(): void {
    this.#dataStarted = true;
  }

  #stale(attempt: RcptAttempt): boolean {
    return attempt.abandoned || this.#dataStarted || this.#released;
  }

  #dropStale(address: string, stage: string): Reply {
    this.deps.onStale?.(address, stage);
    return replies.internalError(); // nobody hears it: the client was answered at the deadline
  }

  async #legFor(target: BackendTarget, attempt: RcptAttempt, fresh: boolean): Promise<Leg> {
    const key = poolKey(target);
    const existing = this.legs.get(key);
    if (existing && !existing.failed) return existing;
    const leg: Leg = { key, target, session: null, failed: null, mailRefused: null, recipients: [], finished: false,
      mail: null, repliesAtStart: 0, diedUnused: false };
    this.legs.set(key, leg);
    this.allLegs.push(leg);
    attempt.inflight = leg;
    try {
      const session = await this.deps.pool.acquire(target, this.deps.acquireMs, fresh);
      leg.repliesAtStart = session.repliesReceived;
      if (leg.failed || this.#stale(attempt)) {
        this.deps.pool.discard(session);
        leg.failed ??= new BackendError('BACKEND_LOST', target.slot, 'RCPT abandoned while its session opened');
        if (this.legs.get(key) === leg) this.legs.delete(key);
        return leg;
      }
      leg.session = session;
      const mail = session.mailFrom(this.mailFrom.address, this.#mailParams(session));
      if (session.pipelining) {
        // MAIL goes out with the first RCPT in one segment; its verdict is checked with the RCPT's.
        leg.mail = mail;
        mail.catch(() => undefined); // failures surface through the RCPT awaiting it
      } else {
        const r = await mail;
        if (!isSuccess(r)) leg.mailRefused = r;
      }
    } catch (err) {
      this.#legFailed(leg, err);
    } finally {
      attempt.inflight = null;
    }
    return leg;
  }

  #mailParams(session: BackendSession): string {
    const a = this.mailFrom.args;
    let p = '';
    if (typeof a.BODY === 'string' && session.eightBitMime) p += ` BODY=${a.BODY}`;
    if (typeof a.SIZE === 'string' && session.size !== null) p += ` SIZE=${a.SIZE}`;
    return p;
  }

  #legFailed(leg: Leg, err: unknown): BackendError | DeadlineError {
    const e = err instanceof BackendError || err instanceof DeadlineError ? err
      : new BackendError('BACKEND_LOST', leg.target.slot, String(err), { cause: err });
    // Lost (closed, reset) before the leg's first reply, on a session that had sat in the pool.
    const s = leg.session;
    if (!leg.failed && s && e instanceof BackendError && e.code === 'BACKEND_LOST' && !s.closing && s.uses > 1
      && leg.recipients.length === 0 && s.repliesReceived === leg.repliesAtStart) leg.diedUnused = true;
    leg.failed ??= e;
    if (leg.session) this.deps.pool.discard(leg.session);
    if (this.legs.get(leg.key) === leg) this.legs.delete(leg.key);
    return leg.failed;
  }

  /** Marks a leg failed mid-DATA (stall, close): its recipients get `err.reply`. */
  failLeg(leg: Leg, err: unknown): void {
    this.#legFailed(leg, err);
  }

  /** Returns every session to the pool (clean only if its transaction completed) exactly once. */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    for (const leg of this.allLegs) {
      if (!leg.session) continue;
      if (leg.failed || !leg.session.alive) this.deps.pool.discard(leg.session);
      else this.deps.pool.release(leg.session, leg.finished);
      leg.session = null;
    }
  }
}
