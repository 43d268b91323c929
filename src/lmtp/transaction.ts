/**
 * One client transaction (MAIL … RCPT … DATA) fanned out over backend sessions ("legs"), one leg
 * per backend slot. MAIL FROM goes to a backend once, when its first recipient arrives; each RCPT
 * is relayed to its store's master and the backend's verdict is the client's reply.
 */
import { BackendError, DeadlineError } from '../core/errors.js';
import { isSuccess, type Reply } from '../core/replies.js';
import type { Route } from '../directory/index.js';
import type { BackendSession, BackendTarget } from './backend-client.js';
import type { InflightBySlot } from './inflight.js';
import { poolKey, type BackendPool } from './pool.js';
import { resolveRecipient, type RecipientRules } from './route.js';
import type { DirectoryReader } from '../directory/index.js';
import type { RcptRejectReason } from './reject-log.js';
import { lmtpReply, lmtpReplyFor, outcomeCodeOf, relayBackendReply, type LmtpOutcome } from './reply.js';

/**
 * Where a leg stands; the payload fields below say which states they belong to. A failure is
 * final: whatever the leg was doing, once failed it stays failed with its first error.
 *
 *   opening ──▶ open ──┬──▶ finished
 *                      └──▶ mailRefused
 *   any of these ──▶ failed | diedUnused   (even finished: a client gone after a backend
 *                                           refused DATA fails every leg, data.ts)
 */
export type LegState =
  /** Waiting for a session from the pool. */
  | 'opening'
  /** Has its session and has sent MAIL FROM (its verdict may still be pending in `mail`). */
  | 'open'
  /** The backend refused MAIL FROM: every recipient routed here gets `mailRefusal`. */
  | 'mailRefused'
  /** The backend answered the final dot for all its recipients, or ended the transaction by refusing
   *  DATA: the session is back at "no transaction" and can be reused without RSET. */
  | 'finished'
  /** Cannot carry this transaction any further: its recipients get `error`'s reply (reply.ts). */
  | 'failed'
  /** Failed (`error`, a BackendError) on a pooled session that acknowledged nothing of this leg:
   *  the session had died while idle, so the RCPT is worth one retry on a new one. */
  | 'diedUnused';

export interface Leg {
  key: string;
  target: BackendTarget;
  state: LegState;
  session: BackendSession | null;
  /** Why the leg failed (states failed and diedUnused only). */
  error: BackendError | DeadlineError | null;
  /** The backend's refusal of MAIL FROM (state mailRefused only). */
  mailRefusal: Reply | null;
  recipients: AcceptedRecipient[];
  /** MAIL FROM sent pipelined with the first RCPT, verdict not yet read. */
  mail: Promise<Reply> | null;
  /** session.repliesReceived when this leg got its session. */
  repliesAtStart: number;
}

/** True once the leg can carry nothing more (failed or diedUnused). */
export function hasFailed(leg: Leg): boolean {
  return leg.state === 'failed' || leg.state === 'diedUnused';
}

/**
 * Moves `leg` to `to` if its lifecycle allows it (see LegState) and returns whether it moved: only
 * an opening leg opens, only an open one finishes or has MAIL refused, and a failure is final.
 */
function moveLeg(leg: Leg, to: LegState): boolean {
  let allowed: boolean;
  switch (to) {
    case 'opening': allowed = false; break;
    case 'open': allowed = leg.state === 'opening'; break;
    case 'mailRefused': case 'finished': allowed = leg.state === 'open'; break;
    case 'failed': case 'diedUnused': allowed = !hasFailed(leg); break;
  }
  if (allowed) leg.state = to;
  return allowed;
}

/** How long a slot stays counted in flight after a transaction ended mid-DATA (see release()). */
const UNSETTLED_COUNT_MS = 10_000;

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
  /** Deliveries in flight per slot, for a failover's hold (inflight.ts). */
  inflight?: InflightBySlot;
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

  /** Refused for a named outcome: its reply (reply.ts). */
  refuse(outcome: LmtpOutcome & RcptRejectReason, detail?: string): Reply {
    return this.#refused(lmtpReply(outcome), outcome, detail);
  }

  /** Refused because something failed (the leg: timeout, connection lost or closed by a 421; the directory): its reply. */
  refuseError(err: unknown, detail = (err as Error | null)?.message): Reply {
    return this.#refused(lmtpReplyFor(err), outcomeCodeOf(err), detail);
  }

  /** A backend's verdict on MAIL or RCPT, relayed (see relayBackendReply). */
  refuseByBackend(r: Reply, stage: 'MAIL' | 'RCPT', slot: string): Reply {
    const relayed = relayBackendReply(r);
    return this.#refused(relayed, relayed !== r ? 'BACKEND_DISAGREES'
      : stage === 'MAIL' ? 'BACKEND_REFUSED_MAIL' : 'BACKEND_REFUSED_RCPT', `slot ${slot}`);
  }

  #refused(reply: Reply, reason: RcptRejectReason, detail: string | undefined): Reply {
    this.reason = reason;
    this.detail = detail;
    return reply;
  }
}

/**
 * How far the transaction has gone. It is its own and not read from the client session's state
 * (session.ts drives it): a RCPT attempt abandoned at its deadline keeps running with a reference
 * to this transaction after the session has moved on to DATA or to another transaction.
 */
type TransactionPhase =
  /** Between MAIL and DATA: RCPTs add recipients. */
  | 'recipients'
  /** DATA began: recipients are fixed, any RCPT work still running is stale. */
  | 'data'
  /** The backend sessions went back to the pool: nothing may use them any more. */
  | 'released';

export class Transaction {
  readonly mailFrom: MailFrom;
  readonly legs = new Map<string, Leg>();
  readonly allLegs: Leg[] = [];
  /** Accepted recipients by smtp-server's envelope key (it keeps one entry per lower-cased address). */
  readonly accepted = new Map<string, AcceptedRecipient>();
  #phase: TransactionPhase = 'recipients';
  /** Slots this transaction counts as in flight (inflight.ts) until it is released. */
  readonly #counted = new Set<string>();

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
    if (this.accepted.has(key)) return attempt.refuse('DUPLICATE_RECIPIENT');

    const decision = await resolveRecipient(address, this.deps.directory, this.deps.rules);
    if (this.#stale(attempt)) return this.#dropStale(address, 'lookup');
    if (!decision.ok) {
      return 'error' in decision ? attempt.refuseError(decision.error, decision.reason) : attempt.refuse(decision.outcome, decision.reason);
    }
    const { master } = decision.route;
    // Counted before anything is sent: from here on this transaction may deliver to the slot.
    if (this.deps.inflight && !this.#counted.has(master.name)) {
      this.#counted.add(master.name);
      this.deps.inflight.add(master.name);
    }
    const target: BackendTarget = { host: master.ip, port: master.lmtp, slot: master.name };
    const first = await this.#relay(target, decision.route, address, key, attempt, false);
    if (!(first instanceof BackendError)) return first;
    // A pooled session that died while idle (the backend restarted, a NAT or firewall forgot it)
    // is only found out by using it. Nothing of this transaction was acknowledged on it, so the
    // RCPT is sent again once, on a new session, instead of tempfailing the recipient.
    this.deps.onRetry?.(target.slot, first);
    const second = await this.#relay(target, decision.route, address, key, attempt, true);
    return second instanceof BackendError ? attempt.refuseError(second) : second;
  }

  /**
   * MAIL (once per leg) and RCPT on the leg for `target`. A BackendError result: the leg died on
   * a reused session before acknowledging anything (only when `fresh` is false): retry.
   */
  async #relay(target: BackendTarget, route: Route, address: string, key: string, attempt: RcptAttempt,
    fresh: boolean): Promise<Reply | BackendError> {
    const leg = await this.#legFor(target, attempt, fresh);
    if (this.#stale(attempt)) return this.#dropStale(address, 'session');
    if (leg.state === 'mailRefused' && leg.mailRefusal) return attempt.refuseByBackend(leg.mailRefusal, 'MAIL', target.slot);
    if (leg.state === 'diedUnused' && !fresh && leg.error instanceof BackendError) return leg.error;
    if (hasFailed(leg) || !leg.session) return attempt.refuseError(leg.error ?? new BackendError('BACKEND_LOST', target.slot, 'no session'));
    attempt.inflight = leg;
    try {
      const rcptReply = leg.session.rcpt(address);
      rcptReply.catch(() => undefined); // handled below; this only keeps a failed MAIL from orphaning it
      if (leg.mail) {
        const mail = await leg.mail;
        leg.mail = null;
        if (this.#stale(attempt)) return this.#dropStale(address, 'MAIL');
        if (!isSuccess(mail)) {
          this.#mailRefused(leg, mail);
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
      if (leg.state === 'diedUnused' && !fresh && failed instanceof BackendError) return failed;
      return attempt.refuseError(failed);
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
    if (leg) this.#legFailed(leg, err);
  }

  /** DATA begins (session.ts): from here on a RCPT attempt still running is a no-op. */
  startData(): void {
    if (this.#phase === 'recipients') this.#phase = 'data';
  }

  #stale(attempt: RcptAttempt): boolean {
    return attempt.abandoned || this.#phase !== 'recipients';
  }

  #dropStale(address: string, stage: string): Reply {
    this.deps.onStale?.(address, stage);
    return lmtpReply('INTERNAL_ERROR'); // nobody hears it: the client was answered at the deadline
  }

  async #legFor(target: BackendTarget, attempt: RcptAttempt, fresh: boolean): Promise<Leg> {
    const key = poolKey(target);
    const existing = this.legs.get(key);
    if (existing && !hasFailed(existing)) return existing;
    const leg: Leg = { key, target, state: 'opening', session: null, error: null, mailRefusal: null, recipients: [],
      mail: null, repliesAtStart: 0 };
    this.legs.set(key, leg);
    this.allLegs.push(leg);
    attempt.inflight = leg;
    try {
      const session = await this.deps.pool.acquire(target, this.deps.acquireMs, fresh);
      leg.repliesAtStart = session.repliesReceived;
      if (hasFailed(leg) || this.#stale(attempt)) {
        this.deps.pool.discard(session);
        this.#legFailed(leg, new BackendError('BACKEND_LOST', target.slot, 'RCPT abandoned while its session opened'));
        return leg;
      }
      leg.session = session;
      moveLeg(leg, 'open');
      const mail = session.mailFrom(this.mailFrom.address, this.#mailParams(session));
      if (session.pipelining) {
        // MAIL goes out with the first RCPT in one segment; its verdict is checked with the RCPT's.
        leg.mail = mail;
        mail.catch(() => undefined); // failures surface through the RCPT awaiting it
      } else {
        const r = await mail;
        if (!isSuccess(r)) this.#mailRefused(leg, r);
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

  #mailRefused(leg: Leg, r: Reply): void {
    if (moveLeg(leg, 'mailRefused')) leg.mailRefusal = r;
  }

  /** Fails the leg (keeping its first error), drops its session and forgets it for new recipients. */
  #legFailed(leg: Leg, err: unknown): BackendError | DeadlineError {
    const e = leg.error ?? this.#firstFailure(leg, err);
    if (leg.session) this.deps.pool.discard(leg.session);
    if (this.legs.get(leg.key) === leg) this.legs.delete(leg.key);
    return e;
  }

  #firstFailure(leg: Leg, err: unknown): BackendError | DeadlineError {
    const e = err instanceof BackendError || err instanceof DeadlineError ? err
      : new BackendError('BACKEND_LOST', leg.target.slot, String(err), { cause: err });
    // Lost (closed, reset) before the leg's first reply, on a session that had sat in the pool.
    const s = leg.session;
    const unused = s !== null && e instanceof BackendError && e.code === 'BACKEND_LOST' && !s.closing && s.uses > 1
      && leg.recipients.length === 0 && s.repliesReceived === leg.repliesAtStart;
    moveLeg(leg, unused ? 'diedUnused' : 'failed');
    leg.error = e;
    return e;
  }

  /** Marks a leg failed mid-DATA (stall, close): its recipients get that error's reply (reply.ts). */
  failLeg(leg: Leg, err: unknown): void {
    this.#legFailed(leg, err);
  }

  /** The backend answered the final dot for every recipient of the leg, or refused DATA itself. */
  finishLeg(leg: Leg): void {
    moveLeg(leg, 'finished');
  }

  /**
   * Returns every session to the pool (clean only if its leg finished) exactly once. Called by
   * the client session (session.ts) when the transaction ends: replied, reset or closed.
   */
  release(): void {
    if (this.#phase === 'released') return;
    const inData = this.#phase === 'data';
    this.#phase = 'released';
    for (const slot of this.#counted) {
      // Ended mid-DATA (the client went away) with a leg to this slot neither finished nor failed:
      // the backend may have the final dot and still be storing the message. It stays counted a
      // while, so a failover's hold falls back to its bound instead of trusting a 0 too early.
      const unsettled = inData && this.allLegs.some((l) => l.target.slot === slot && l.state === 'open');
      if (unsettled) setTimeout(() => this.deps.inflight?.remove(slot), UNSETTLED_COUNT_MS).unref();
      else this.deps.inflight?.remove(slot);
    }
    for (const leg of this.allLegs) {
      if (!leg.session) continue;
      if (hasFailed(leg) || !leg.session.alive) this.deps.pool.discard(leg.session);
      else this.deps.pool.release(leg.session, leg.state === 'finished');
      leg.session = null;
    }
  }
}
