/**
 * One LMTP client connection as a state machine: its named states, and `transition`, the one
 * function every smtp-server hook (hooks.ts) moves it with.
 *
 * smtp-server runs the protocol itself: it answers 503 to RCPT before MAIL, to DATA before an
 * accepted RCPT and to a nested MAIL, and only calls a hook for a command it has let through. What
 * this machine tracks is ours: the transaction that holds backend sessions. It is therefore the one
 * place where a transaction is opened, where its recipients become fixed, and where its backend
 * sessions go back to the pool: leaving it for `idle` or `closed` releases it, exactly once.
 *
 *            MAIL          RCPT_ACCEPTED          DATA           REPLIED
 *   idle ──────────▶ mail ─────────────▶ rcpt ──────────▶ data ──────────▶ idle
 *    ▲ ▲               │                  │
 *    │ └───── RSET ────┴──────────────────┘          (RCPT: allowed in mail and rcpt, stays)
 *    │
 *    └ any state but closed ── CLOSE ──▶ closed      (a late RCPT_ACCEPTED, REPLIED: stays)
 *
 * RSET is not a hook. smtp-server resets its envelope on RSET and LHLO (HELO, EHLO) without telling
 * the application, and refuses RCPT and DATA until a new MAIL; that MAIL is the first sign of it,
 * so the MAIL hook applies RSET just before MAIL (in `idle` it changes nothing). Until then the
 * abandoned transaction keeps its backend sessions, as it would have for a client that just waits.
 *
 * Performance: this runs twice per recipient. A transition is a few string comparisons and one
 * assignment: no allocation, no closure, no Map.
 */
import type { Transaction } from './transaction.js';

export type SessionState =
  /** No transaction: after the greeting, after the final replies, after a reset or refused MAIL. */
  | 'idle'
  /** MAIL accepted, no recipient yet. Holds a transaction. */
  | 'mail'
  /** At least one recipient accepted: DATA may come. Holds a transaction. */
  | 'rcpt'
  /** DATA under way: recipients fixed, message streaming, final replies not yet given. */
  | 'data'
  /** The client connection is gone. Terminal. */
  | 'closed';

export type SessionEvent =
  /** MAIL FROM accepted by us: opens the transaction given with it. */
  | 'MAIL'
  /** The client reset its transaction (RSET, LHLO), seen at its next MAIL: releases it. */
  | 'RSET'
  /** A RCPT arrives: it needs an open transaction. */
  | 'RCPT'
  /** A RCPT is answered 250. */
  | 'RCPT_ACCEPTED'
  /** DATA arrives: recipients are fixed from here. */
  | 'DATA'
  /** The final replies are about to go out: releases the transaction first, since the replies let
   *  smtp-server run the client's pipelined next MAIL at once, which must find this one over. */
  | 'REPLIED'
  /** The connection closed: releases any transaction. */
  | 'CLOSE';

/**
 * For each event, the states it may happen in and the state it leads to; undefined: refused. One
 * line per event, like a command table: to see what RCPT may do, read one line. A switch of
 * string comparisons rather than a lookup table: ~3 ns a transition against ~17 ns for a nested
 * object lookup (megamorphic keyed loads; micro-benchmark, Node 20), twice per recipient.
 */
export function nextState(state: SessionState, event: SessionEvent): SessionState | undefined {
  switch (event) {
    case 'MAIL': return state === 'idle' ? 'mail' : undefined;
    case 'RSET': return state === 'idle' || state === 'mail' || state === 'rcpt' ? 'idle' : undefined;
    case 'RCPT': return state === 'mail' || state === 'rcpt' ? state : undefined;
    // closed: the client hung up while its RCPT was being decided; the answer goes nowhere.
    case 'RCPT_ACCEPTED': return state === 'mail' || state === 'rcpt' ? 'rcpt' : state === 'closed' ? 'closed' : undefined;
    case 'DATA': return state === 'rcpt' ? 'data' : undefined;
    // closed: the client hung up during DATA; its transaction was released at CLOSE.
    case 'REPLIED': return state === 'data' ? 'idle' : state === 'closed' ? 'closed' : undefined;
    case 'CLOSE': return state !== 'closed' ? 'closed' : undefined;
  }
}

/** Told of every refused transition: each one is a bug (ours or smtp-server's), never the client's. */
export type RefusedTransition = (session: ClientSession, event: SessionEvent) => void;

export class ClientSession {
  /** smtp-server's session id (logs). */
  readonly id: string;
  #state: SessionState = 'idle';
  /** The open transaction: set exactly in mail, rcpt and data. */
  #tx: Transaction | null = null;
  readonly #onRefused: RefusedTransition | undefined;

  constructor(id: string, onRefused?: RefusedTransition) {
    this.id = id;
    this.#onRefused = onRefused;
  }

  get state(): SessionState {
    return this.#state;
  }

  /** The open transaction (non-null in mail, rcpt and data). */
  get tx(): Transaction | null {
    return this.#tx;
  }

  /** A transaction is open: shutdown waits for it instead of closing the connection. */
  get inTransaction(): boolean {
    return this.#tx !== null;
  }

  /**
   * Applies `event`. Returns false, changing nothing, when the event cannot happen in the current
   * state; the refusal is reported to `onRefused`, and the caller answers it where a reply is due
   * (hooks.ts: a 451, transient like every answer we cannot vouch for).
   */
  transition(event: 'MAIL', tx: Transaction): boolean;
  transition(event: Exclude<SessionEvent, 'MAIL'>): boolean;
  transition(event: SessionEvent, tx?: Transaction): boolean {
    const next = nextState(this.#state, event);
    if (next === undefined) {
      this.#onRefused?.(this, event);
      return false;
    }
    if (next === 'idle' || next === 'closed') {
      // Leaving the transaction, however it ended: its backend sessions go back to the pool.
      const open = this.#tx;
      this.#tx = null;
      open?.release();
    } else if (event === 'MAIL') {
      this.#tx = tx ?? null;
    } else if (event === 'DATA') {
      this.#tx?.startData(); // an abandoned RCPT still running must not add a recipient now
    }
    this.#state = next;
    return true;
  }
}
