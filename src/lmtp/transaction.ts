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
  /** The leg whose backend command is in flight, so a deadline can poison exactly it. */
  #inflight: Leg | null = null;
  #released = false;

  constructor(mailFrom: MailFrom, private readonly deps: TransactionDeps) {
    this.mailFrom = mailFrom;
  }

  /**
   * Routes, relays and answers one RCPT. `address` is what the backend gets (see address.ts),
   * `key` smtp-server's envelope key for it. Never throws: every outcome is a reply.
   */
  async addRecipient(address: string, key: string): Promise<Reply> {
    // smtp-server keeps one envelope entry per lower-cased address, so it will ask for one final
    // reply where postfix, having heard two 250s, waits for two: lock-step broken. The later one
    // is deferred instead (452 4.5.3: postfix sends it again in a new transaction).
    if (this.accepted.has(key)) return replies.tooManyRecipients();

    const decision = await resolveRecipient(address, this.deps.directory, this.deps.rules);
    if (!decision.ok) return decision.reply;
    const { master } = decision.route;
    const target: BackendTarget = { host: master.ip, port: master.lmtp, slot: master.name };
    const leg = await this.#legFor(target);
    if (leg.mailRefused) return relayBackendReply(leg.mailRefused);
    if (leg.failed || !leg.session) return (leg.failed ?? new BackendError('BACKEND_LOST', target.slot, 'no session')).reply;
    this.#inflight = leg;
    try {
      const rcptReply = leg.session.rcpt(address);
      rcptReply.catch(() => undefined); // handled below; this only keeps a failed MAIL from orphaning it
      if (leg.mail) {
        const mail = await leg.mail;
        leg.mail = null;
        if (!isSuccess(mail)) {
          leg.mailRefused = mail;
          await rcptReply.catch(() => undefined); // its "503 need MAIL" is consumed, not relayed
          return relayBackendReply(mail);
        }
      }
      const r = await rcptReply;
      const late = leg.failed as Leg['failed']; // set by abandonInflight() while we awaited
      if (late) return late.reply;
      if (!isSuccess(r)) return relayBackendReply(r);
      const rcpt: AcceptedRecipient = { address, key, route: decision.route, leg, reply: r };
      this.accepted.set(key, rcpt);
      leg.recipients.push(rcpt);
      return r;
    } catch (err) {
      return this.#legFailed(leg, err).reply;
    } finally {
      this.#inflight = null;
    }
  }

  /**
   * The RCPT deadline fired: whatever backend command is in flight may still be answered, and a
   * late "250" we did not relay would desynchronise the final replies. That session is dropped.
   */
  abandonInflight(err: DeadlineError): void {
    const leg = this.#inflight;
    if (!leg) return;
    leg.failed = err;
    if (leg.session) this.deps.pool.discard(leg.session);
    if (this.legs.get(leg.key) === leg) this.legs.delete(leg.key);
  }

  async #legFor(target: BackendTarget): Promise<Leg> {
    const key = poolKey(target);
    const existing = this.legs.get(key);
    if (existing && !existing.failed) return existing;
    const leg: Leg = { key, target, session: null, failed: null, mailRefused: null, recipients: [], finished: false, mail: null };
    this.legs.set(key, leg);
    this.allLegs.push(leg);
    this.#inflight = leg;
    try {
      const session = await this.deps.pool.acquire(target, this.deps.acquireMs);
      if (leg.failed || this.#released) {
        this.deps.pool.discard(session);
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
      this.#inflight = null;
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
