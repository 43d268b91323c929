/**
 * smtp-server's hooks for the LMTP listener: what MAIL, RCPT, DATA and a closed connection do.
 * Each moves the client's session (session.ts) first, and answers a refused move with a 451.
 * Every handler that waits is guarded: an exception or an expired deadline is a 451, never a hung
 * session (an async throw inside smtp-server hangs the client forever).
 */
import type { Logger } from 'pino';
import type { SMTPServerAddress, SMTPServerDataStream, SMTPServerDataResult, SMTPServerSession } from 'smtp-server';
import { DeadlineError } from '../core/errors.js';
import { withDeadline } from '../core/deadline.js';
import { formatReply, type Reply } from '../core/replies.js';
import type { Config } from '../config/index.js';
import type { Directory } from '../directory/index.js';
import type { JournalSink } from '../journal/index.js';
import type { BackendPool } from './pool.js';
import type { LmtpMetrics } from './metrics.js';
import type { InflightBySlot } from './inflight.js';
import { RcptAttempt, Transaction, type TransactionDeps } from './transaction.js';
import { streamData, type SmtpDataStream } from './data.js';
import { createBufferReclaimer } from './reclaim.js';
import { asciiAddress } from './address.js';
import type { RcptRejectLog, RcptRejectReason } from './reject-log.js';
import { ClientSession, type RefusedTransition } from './session.js';
import { lmtpReply, lmtpReplyFor, smtpServerError, smtpServerFinal } from './reply.js';

/**
 * DATA bytes received between two young-generation collections (reclaim.ts): bounds the dead
 * chunk buffers awaiting collection to about this much, at a fraction of a ms per collection.
 */
const RECLAIM_EVERY_BYTES = 4 * 1024 * 1024;

export interface SessionHooksDeps {
  config: Config['lmtp'];
  directory: Directory;
  journal?: JournalSink;
  /** null: do not look at headers at all; "": find the Message-ID but add none (data.ts). */
  messageIdDomain: string | null;
  pool: BackendPool;
  metrics: LmtpMetrics;
  rejectLog: RcptRejectLog;
  logger: Logger;
  /** True once the server is closing: a new transaction gets 421. */
  shuttingDown(): boolean;
  inflight: InflightBySlot;
}

type Callback = (err?: Error | null) => void;

export interface SessionHooks {
  onConnect(session: SMTPServerSession, cb: Callback): void;
  onMailFrom(address: SMTPServerAddress, session: SMTPServerSession, cb: Callback): void;
  onRcptTo(address: SMTPServerAddress, session: SMTPServerSession, cb: Callback): void;
  onData(stream: SMTPServerDataStream, session: SMTPServerSession,
    cb: (err?: Error | null, message?: SMTPServerDataResult[]) => void): void;
  onClose(session: SMTPServerSession): void;
  /** This connection has a transaction open: shutdown lets it finish instead of closing it. */
  inTransaction(session: SMTPServerSession): boolean;
  /** Some connection has a transaction open. */
  anyInTransaction(): boolean;
}

/**
 * Our state rides on smtp-server's session object (kept for the whole connection, "to keep
 * application specific data"): a field read per hook instead of a Map lookup by session id.
 */
type WithClient = SMTPServerSession & { storeroute?: ClientSession };

function replyClass(r: Reply): string {
  return `${Math.floor(r.code / 100)}xx`;
}

/** Postfix's queue id when it sent XFORWARD IDENT, else ours: the same at RCPT and after DATA. */
function queueIdOf(session: SMTPServerSession): string {
  return (session.xForward?.get('IDENT') as string | undefined) || `${session.id}.${session.transaction}`;
}

export function createSessionHooks(deps: SessionHooksDeps): SessionHooks {
  const { config, journal, messageIdDomain, pool, metrics, rejectLog, logger, shuttingDown } = deps;
  // The per-recipient delivery line carries only our own fields (queue id, address, store, slot,
  // the reply line, ms), none of which can hold a secret; the logger's wildcard redaction paths
  // cost ~2 µs a line, five lines a message at five recipients. Every other line keeps them.
  const deliveryLog = logger.child({}, { redact: [] });
  const reclaimer = createBufferReclaimer(RECLAIM_EVERY_BYTES);
  /** Sessions between onConnect and onClose (shutdown looks for open transactions among them). */
  const open = new Set<ClientSession>();
  // Shared by every transaction: built once, not per MAIL.
  const txDeps: TransactionDeps = {
    pool, directory: deps.directory, acquireMs: config.rcptDeadlineMs,
    rules: { recipientDelimiter: config.recipientDelimiter, localDomains: config.localDomains },
    onStale: (rcpt, stage) => logger.debug({ rcpt, stage }, 'lmtp_rcpt_stale_dropped'),
    onRetry: (slot, err) => logger.info({ slot, err: err.message }, 'lmtp_backend_session_retried'),
    inflight: deps.inflight,
  };
  const refused: RefusedTransition = (client, event) =>
    logger.warn({ session: client.id, event, state: client.state }, 'lmtp_session_transition_refused');

  const adopt = (session: SMTPServerSession): ClientSession => {
    const client = new ClientSession(session.id, refused);
    (session as WithClient).storeroute = client;
    open.add(client);
    return client;
  };
  // Every hook runs after onConnect, which adopts the session; `adopt` here is only a safety net.
  const clientOf = (session: SMTPServerSession): ClientSession => (session as WithClient).storeroute ?? adopt(session);

  /**
   * try/catch + deadline around a handler that decides a reply: whatever happens, `answer` is
   * called exactly once (with the error when the work threw or its deadline expired: a 451).
   */
  const guard = (what: string, ms: number, answer: (r: Reply, err?: unknown) => void,
    work: () => Promise<Reply>, onTimeout?: (e: DeadlineError) => void) => {
    let deadlineErr: DeadlineError | null = null;
    withDeadline(work(), ms, what, () => (deadlineErr = new DeadlineError(what, ms))).then(
      (r) => answer(r),
      (err: unknown) => {
        if (deadlineErr && err === deadlineErr) onTimeout?.(deadlineErr);
        logger.warn({ err, what }, 'lmtp_handler_failed');
        answer(lmtpReplyFor(err), err);
      },
    );
  };

  /** A RCPT not accepted: counted, logged (rate-limited) and answered. Never on the accepted path. */
  const refuseRcptWith = (session: SMTPServerSession, recipient: string, r: Reply, reason: RcptRejectReason,
    detail: string | undefined, cb: Callback) => {
    metrics.rcptRejects.inc({ class: replyClass(r) });
    rejectLog.write({ queueId: queueIdOf(session), recipient, reply: r, reason, detail });
    cb(smtpServerError(r));
  };
  /** A RCPT refused by us before any routing, for a named outcome. */
  const refuseRcpt = (session: SMTPServerSession, recipient: string,
    outcome: 'NO_TRANSACTION' | 'TOO_MANY_RECIPIENTS' | 'RCPT_SYNTAX', cb: Callback) =>
    refuseRcptWith(session, recipient, lmtpReply(outcome), outcome, undefined, cb);

  return {
    onConnect(session, cb) {
      if (shuttingDown()) return cb(smtpServerError(lmtpReply('SHUTTING_DOWN')));
      metrics.sessions.inc();
      metrics.sessionsTotal.inc();
      clientOf(session);
      cb();
    },

    onMailFrom(address, session, cb) {
      const client = clientOf(session);
      client.transition('RSET'); // a transaction abandoned by RSET/LHLO gives its sessions back first
      if (shuttingDown()) return cb(smtpServerError(lmtpReply('SHUTTING_DOWN')));
      const from = asciiAddress(address.address); // smtp-server decoded an xn-- domain: address.ts
      if (from === null) return cb(smtpServerError(lmtpReply('SENDER_SYNTAX')));
      const tx = new Transaction({ address: from, args: (address.args || {}) as Record<string, string | boolean> }, txDeps);
      if (!client.transition('MAIL', tx)) return cb(smtpServerError(lmtpReply('NO_TRANSACTION')));
      cb();
    },

    onRcptTo(address, session, cb) {
      const client = clientOf(session);
      const tx = client.transition('RCPT') ? client.tx : null;
      if (tx === null) return refuseRcpt(session, address.address, 'NO_TRANSACTION', cb);
      if (session.envelope.rcptTo.length >= config.maxRecipients) {
        return refuseRcpt(session, address.address, 'TOO_MANY_RECIPIENTS', cb);
      }
      const to = asciiAddress(address.address);
      if (to === null) return refuseRcpt(session, address.address, 'RCPT_SYNTAX', cb);
      const attempt = new RcptAttempt();
      guard('RCPT', config.rcptDeadlineMs, (r, err) => {
        if (r.code < 400) {
          client.transition('RCPT_ACCEPTED');
          return cb(null);
        }
        if (err !== undefined) attempt.refuseError(err);
        refuseRcptWith(session, to, r, attempt.reason ?? 'INTERNAL_ERROR', attempt.detail, cb);
      }, () => tx.addRecipient(to, address.address.toLowerCase(), attempt), (e) => tx.abandon(attempt, e));
    },

    onData(stream, session, cb) {
      const client = clientOf(session);
      const started = process.hrtime.bigint();
      const queueId = queueIdOf(session);
      const rcptTo = session.envelope.rcptTo;
      // Recipients are fixed from here: an abandoned RCPT still running must not add one.
      const tx = client.transition('DATA') ? client.tx : null;
      if (tx === null) {
        stream.resume();
        return cb(smtpServerError(lmtpReply('NO_TRANSACTION')));
      }
      const entry = journal ? journal.begin({ queueId, mailFrom: tx.mailFrom.address, receivedAt: new Date() }) : null;
      const finish = (perRcpt: Reply[]) => {
        const ms = Number(process.hrtime.bigint() - started) / 1e6;
        metrics.deliverySeconds.observe(ms / 1000);
        // One answer per recipient smtp-server holds, in its order: postfix counts them.
        client.transition('REPLIED'); // before answering: see the REPLIED event in session.ts
        cb(null, perRcpt.map((r, i) => {
          const addr = rcptTo[i]?.address ?? '';
          const rc = tx.accepted.get(addr.toLowerCase());
          metrics.deliveries.inc({ result: r.code < 300 ? 'delivered' : r.code < 500 ? 'tempfail' : 'permfail', class: replyClass(r) });
          deliveryLog.info({ queueId, rcpt: addr, store: rc?.route.store.name, slot: rc?.route.master.name,
            reply: formatReply(r), ms: Math.round(ms) }, 'lmtp_delivery');
          return smtpServerFinal(r);
        }));
      };
      streamData(tx, stream as SmtpDataStream, {
        journal: entry, messageIdDomain, onBytes: (n) => { metrics.bytes.inc(n); reclaimer.add(n); },
        // The journal's commit is bounded like the backends' final replies it comes after.
        journalCommitMs: config.backend.finalReplyTimeoutMs,
      }).then(
        (out) => finish(rcptTo.map((r) => out.replies.get(r.address.toLowerCase()) ?? lmtpReply('INTERNAL_ERROR'))),
        (err: unknown) => {
          logger.warn({ err, queueId }, 'lmtp_data_failed');
          finish(rcptTo.map(() => lmtpReplyFor(err)));
        },
      );
    },

    onClose(session) {
      const client = (session as WithClient).storeroute;
      if (!client || !client.transition('CLOSE')) return;
      open.delete(client);
      metrics.sessions.dec();
    },

    inTransaction: (session) => (session as WithClient).storeroute?.inTransaction ?? false,

    anyInTransaction() {
      for (const client of open) if (client.inTransaction) return true;
      return false;
    },
  };
}
