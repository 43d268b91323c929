/**
 * The LMTP listener: smtp-server in LMTP mode (postfix's next hop) wired to routing, the backend
 * pool and the DATA fan-out. Every handler is guarded: an exception or an expired deadline is a
 * 451, never a hung session (an async throw inside smtp-server hangs the client forever).
 */
import { createServer, type Server, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { unlink } from 'node:fs/promises';
import { format } from 'node:util';
import type { Logger } from 'pino';
import { SMTPServer, type SMTPServerAddress, type SMTPServerSession } from 'smtp-server';
import { DeadlineError, replyFor, StorerouteError } from '../core/errors.js';
import { withDeadline } from '../core/deadline.js';
import { formatReply, replies, type Reply } from '../core/replies.js';
import type { Config } from '../config/index.js';
import type { Directory } from '../directory/types.js';
import type { JournalSink } from '../journal/types.js';
import type { Observability } from '../core/deps.js';
import { applySmtpServerPatches } from './smtp-patch.js';
import { BackendPool } from './pool.js';
import { backendTimeouts } from './deliver.js';
import { createLmtpMetrics, type LmtpMetrics } from './metrics.js';
import { RcptAttempt, Transaction } from './transaction.js';
import { streamData, type SmtpDataStream } from './data.js';
import { createBufferReclaimer } from './reclaim.js';
import { asciiAddress } from './address.js';
import { RcptRejectLog, type RcptRejectReason } from './reject-log.js';

/**
 * DATA bytes received between two young-generation collections (reclaim.ts): bounds the dead
 * chunk buffers awaiting collection to about this much, at a fraction of a ms per collection.
 */
const RECLAIM_EVERY_BYTES = 4 * 1024 * 1024;

/**
 * lmtp_rcpt_rejected lines per second at most (reject-log.ts): enough to see every refusal in
 * normal running; a flood beyond it is counted in one line per second (and in the metric).
 */
const RCPT_REJECT_LOG_PER_SECOND = 100;

export interface LmtpServerDeps {
  config: Config['lmtp'];
  journalConfig: Config['journal'];
  directory: Directory;
  journal?: JournalSink;
  obs: Observability;
}

export interface LmtpServer {
  /** Starts the configured listeners; resolves with the bound TCP port and/or socket path. */
  listen(): Promise<{ port?: number; socket?: string }>;
  /** Stops accepting, lets transactions finish for up to `graceMs`, then tempfails the rest. */
  close(graceMs?: number): Promise<void>;
}

interface ClientState {
  tx: Transaction | null;
  /** True from MAIL until the final replies (or the transaction is abandoned). */
  busy: boolean;
  dataAbort: (() => void) | null;
}

/** A reply as smtp-server wants it: an Error carrying the code; the text starts with the enhanced code. */
function replyError(r: Reply): Error {
  return Object.assign(new Error(`${r.enhanced} ${r.text}`), { responseCode: r.code });
}

function replyClass(r: Reply): string {
  return `${Math.floor(r.code / 100)}xx`;
}

/** Postfix's queue id when it sent XFORWARD IDENT, else ours: the same at RCPT and after DATA. */
function queueIdOf(session: SMTPServerSession): string {
  return (session.xForward?.get('IDENT') as string | undefined) || `${session.id}.${session.transaction}`;
}

/** Socket errors smtp-server itself treats as a client hanging up (its QUIET_SOCKET_ERRORS). */
const CLIENT_HANG_UPS = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH']);

/**
 * smtp-server logs bunyan-style with printf arguments; pino would drop them. Its own error-level
 * line for a client that hung up is debug here: outside a transaction it is routine (postfix
 * and smtp-source close that way), and inside one smtp-server also emits 'error', which is
 * logged as lmtp_client_error.
 *
 * Installed as the server's `logger` directly (see below), so it also takes bunyan's
 * message-only form. The level is checked first: smtp-server logs every command and connection
 * (a dozen lines per message) and in production none of them is written.
 */
function smtpLogger(logger: Logger) {
  const at = (level: 'debug' | 'warn') => (meta: unknown, ...rest: unknown[]) => {
    if (level === 'debug' && !logger.isLevelEnabled('debug')) return;
    const fields = (typeof meta === 'object' && meta !== null ? meta : {}) as Record<string, unknown>;
    const args = typeof meta === 'object' && meta !== null ? rest : [meta, ...rest];
    const { err, tnx, cid } = fields;
    const code = (err as { code?: unknown } | undefined)?.code;
    const lvl = level === 'warn' && typeof code === 'string' && CLIENT_HANG_UPS.has(code) ? 'debug' : level;
    if (lvl !== level && !logger.isLevelEnabled(lvl)) return;
    logger[lvl]({ tnx, cid, err }, 'smtp_server', format(...(args as [unknown, ...unknown[]])));
  };
  const l = { trace: at('debug'), debug: at('debug'), info: at('debug'), warn: at('warn'), error: at('warn'),
    fatal: at('warn'), child: () => l };
  return l;
}

export function createLmtpServer(deps: LmtpServerDeps): LmtpServer {
  applySmtpServerPatches();
  const { config, journalConfig, directory, journal, obs } = deps;
  const logger = obs.logger.child({ component: 'lmtp' });
  // The per-recipient delivery line carries only our own fields (queue id, address, store, slot,
  // the reply line, ms), none of which can hold a secret; the logger's wildcard redaction paths
  // cost ~2 µs a line, five lines a message at five recipients. Every other line keeps them.
  const deliveryLog = logger.child({}, { redact: [] });
  // The gauge reads pool sizes lazily, at scrape time.
  const metrics: LmtpMetrics = createLmtpMetrics(obs.metrics, () => pool.stats());
  const pool: BackendPool = new BackendPool({
    lhloName: config.backend.lhloName ?? config.hostname,
    timeouts: backendTimeouts(config.backend),
    maxSessionsPerSlot: config.backend.maxSessionsPerSlot,
    idleTimeoutMs: config.backend.idleTimeoutMs,
    logger,
    metrics,
  });
  const rejectLog = new RcptRejectLog(logger, { perWindow: RCPT_REJECT_LOG_PER_SECOND, windowMs: 1_000 });
  const clients = new Map<string, ClientState>();
  const reclaimer = createBufferReclaimer(RECLAIM_EVERY_BYTES);
  const rules = { recipientDelimiter: config.recipientDelimiter, localDomains: config.localDomains };
  const messageIdDomain = !journal ? null
    : journalConfig.addMessageId ? (journalConfig.messageIdDomain ?? config.hostname) : '';
  let shuttingDown = false;
  const listeners: Server[] = [];
  const openSockets = new Set<Socket>();
  const idPrefix = randomBytes(5).toString('hex');
  let connections = 0;

  const stateOf = (session: SMTPServerSession): ClientState => {
    let s = clients.get(session.id);
    if (!s) {
      s = { tx: null, busy: false, dataAbort: null };
      clients.set(session.id, s);
    }
    return s;
  };

  const endTransaction = (state: ClientState) => {
    state.tx?.release();
    state.tx = null;
    state.busy = false;
    state.dataAbort = null;
  };

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
        answer(replyFor(err), err);
      },
    );
  };

  /** A RCPT not accepted: counted, logged (rate-limited) and answered. Never on the accepted path. */
  const refuseRcpt = (session: SMTPServerSession, recipient: string, r: Reply, reason: RcptRejectReason,
    detail: string | undefined, cb: (err?: Error | null) => void) => {
    metrics.rcptRejects.inc({ class: replyClass(r) });
    rejectLog.write({ queueId: queueIdOf(session), recipient, reply: r, reason, detail });
    cb(replyError(r));
  };

  const smtp = new SMTPServer({
    lmtp: true,
    name: config.hostname,
    banner: 'storeroute',
    size: config.maxMessageSize,
    rejectOversized: true,
    maxClients: config.maxClients,
    // Enforced in onRcptTo instead, so that this refusal is counted and logged like the others.
    maxRecipients: 0,
    socketTimeout: config.socketTimeoutMs,
    closeTimeout: 1_000,
    disabledCommands: ['AUTH', 'STARTTLS'],
    hideENHANCEDSTATUSCODES: false,
    hideDSN: true,
    hideSMTPUTF8: true,
    disableReverseLookup: true,
    useXForward: true,
    logger: smtpLogger(logger) as never,

    onConnect(session, cb) {
      if (shuttingDown) return cb(replyError(replies.shuttingDown()));
      metrics.sessions.inc();
      metrics.sessionsTotal.inc();
      stateOf(session);
      cb();
    },

    onMailFrom(address: SMTPServerAddress, session, cb) {
      const state = stateOf(session);
      endTransaction(state); // a transaction abandoned by RSET/LHLO gives its sessions back first
      if (shuttingDown) return cb(replyError(replies.shuttingDown()));
      const from = asciiAddress(address.address); // smtp-server decoded an xn-- domain: address.ts
      if (from === null) return cb(replyError(replies.badSenderSyntax()));
      state.tx = new Transaction({ address: from, args: (address.args || {}) as Record<string, string | boolean> }, {
        pool, directory, rules, acquireMs: config.rcptDeadlineMs,
        onStale: (rcpt, stage) => logger.debug({ rcpt, stage }, 'lmtp_rcpt_stale_dropped'),
        onRetry: (slot, err) => logger.info({ slot, err: err.message }, 'lmtp_backend_session_retried'),
      });
      state.busy = true;
      cb();
    },

    onRcptTo(address: SMTPServerAddress, session, cb) {
      const tx = stateOf(session).tx;
      if (!tx) return refuseRcpt(session, address.address, replies.internalError(), 'NO_TRANSACTION', undefined, cb);
      if (session.envelope.rcptTo.length >= config.maxRecipients) {
        return refuseRcpt(session, address.address, replies.tooManyRecipients(), 'TOO_MANY_RECIPIENTS', undefined, cb);
      }
      const to = asciiAddress(address.address);
      if (to === null) return refuseRcpt(session, address.address, replies.badRecipientSyntax(), 'RCPT_SYNTAX', undefined, cb);
      const attempt = new RcptAttempt();
      guard('RCPT', config.rcptDeadlineMs, (r, err) => {
        if (r.code < 400) return cb(null);
        if (err !== undefined) {
          attempt.refuse(r, err instanceof StorerouteError ? err.code : 'INTERNAL_ERROR', (err as Error | null)?.message);
        }
        refuseRcpt(session, to, r, attempt.reason ?? 'INTERNAL_ERROR', attempt.detail, cb);
      }, () => tx.addRecipient(to, address.address.toLowerCase(), attempt), (e) => tx.abandon(attempt, e));
    },

    onData(stream, session, cb) {
      const state = stateOf(session);
      const tx = state.tx;
      const started = process.hrtime.bigint();
      const queueId = queueIdOf(session);
      const rcptTo = session.envelope.rcptTo;
      if (!tx) {
        stream.resume();
        return cb(replyError(replies.internalError()));
      }
      tx.startData(); // recipients are fixed now: an abandoned RCPT still running must not add one
      const entry = journal ? journal.begin({ queueId, mailFrom: tx.mailFrom.address, receivedAt: new Date() }) : null;
      const finish = (perRcpt: Reply[]) => {
        const ms = Number(process.hrtime.bigint() - started) / 1e6;
        metrics.deliverySeconds.observe(ms / 1000);
        // One answer per recipient smtp-server holds, in its order: postfix counts them.
        // Give the sessions back before answering: the reply lets smtp-server run the client's
        // pipelined next MAIL at once, which must find this transaction over.
        tx.release();
        if (state.tx === tx) endTransaction(state);
        cb(null, perRcpt.map((r, i) => {
          const addr = rcptTo[i]?.address ?? '';
          const rc = tx.accepted.get(addr.toLowerCase());
          metrics.deliveries.inc({ result: r.code < 300 ? 'delivered' : r.code < 500 ? 'tempfail' : 'permfail', class: replyClass(r) });
          deliveryLog.info({ queueId, rcpt: addr, store: rc?.route.store.name, slot: rc?.route.master.name,
            reply: formatReply(r), ms: Math.round(ms) }, 'lmtp_delivery');
          return r.code < 300 ? `${r.enhanced} ${r.text || 'OK'}` : replyError(r);
        }));
      };
      streamData(tx, stream as SmtpDataStream, {
        journal: entry, messageIdDomain, onBytes: (n) => { metrics.bytes.inc(n); reclaimer.add(n); },
        // The journal's commit is bounded like the backends' final replies it comes after.
        journalCommitMs: config.backend.finalReplyTimeoutMs,
      }).then(
        (out) => finish(rcptTo.map((r) => out.replies.get(r.address.toLowerCase()) ?? replies.internalError())),
        (err: unknown) => {
          logger.warn({ err, queueId }, 'lmtp_data_failed');
          finish(rcptTo.map(() => replyFor(err)));
        },
      );
    },

    onClose(session) {
      const state = clients.get(session.id);
      if (!state) return;
      clients.delete(session.id);
      metrics.sessions.dec();
      endTransaction(state);
    },
  });
  // smtp-server wraps the logger it is given in nodemailer's adapter, which copies the fields of
  // every line into a new object before our level check could skip it; its connections log
  // through `server.logger`, so ours goes there directly (pinned version: smtp-patch.ts).
  (smtp as unknown as { logger: unknown }).logger = smtpLogger(logger);
  smtp.on('error', (err) => logger.warn({ err }, 'lmtp_client_error'));

  const accept = (socket: Socket) => {
    openSockets.add(socket);
    socket.once('close', () => openSockets.delete(socket));
    socket.on('error', () => undefined);
    if (shuttingDown) {
      socket.end(`${formatReply(replies.shuttingDown())}\r\n`);
      return;
    }
    // Our own session id (smtp-server draws 10 random bytes per connection otherwise): a random
    // prefix per server keeps ids (and queue ids made from them) unique across restarts.
    smtp.connect(socket, { id: `${idPrefix}${(++connections).toString(36).padStart(6, '0')}` });
  };

  async function listen(): Promise<{ port?: number; socket?: string }> {
    const out: { port?: number; socket?: string } = {};
    if (config.listen) {
      const srv = createServer(accept);
      await new Promise<void>((resolve, reject) => {
        srv.once('error', reject);
        srv.listen(config.listen?.port ?? 0, config.listen?.host, () => resolve());
      });
      const a = srv.address();
      if (a && typeof a === 'object') out.port = a.port;
      listeners.push(srv);
    }
    if (config.socket) {
      const path = config.socket;
      await unlink(path).catch(() => undefined); // a stale socket file from a previous run
      const srv = createServer(accept);
      await new Promise<void>((resolve, reject) => {
        srv.once('error', reject);
        srv.listen(path, () => resolve());
      });
      out.socket = path;
      listeners.push(srv);
    }
    logger.info({ ...out }, 'lmtp_listening');
    return out;
  }

  async function close(graceMs = config.shutdownGraceMs): Promise<void> {
    shuttingDown = true;
    // net.Server.close() resolves only once every accepted connection is gone: start it, await it last.
    const stopped = Promise.all(listeners.map((srv) => new Promise<void>((r) => srv.close(() => r()))));
    if (config.socket) await unlink(config.socket).catch(() => undefined);
    // Idle sessions go at once; a session in a transaction is closed when it finishes (its next MAIL
    // gets 421) or when the grace period ends.
    const idleOut = () => {
      for (const conn of smtp.connections) {
        const st = clients.get(conn.session.id);
        if (!st || !st.busy) conn.send(421, formatReply(replies.shuttingDown()).slice(4));
      }
    };
    idleOut();
    const until = Date.now() + graceMs;
    while (Date.now() < until && [...clients.values()].some((c) => c.busy)) {
      await new Promise((r) => setTimeout(r, 20));
      idleOut();
    }
    for (const conn of smtp.connections) conn.send(421, formatReply(replies.shuttingDown()).slice(4));
    for (const s of openSockets) s.destroy();
    await pool.close();
    rejectLog.flush();
    await new Promise<void>((r) => smtp.close(() => r()));
    await stopped;
    logger.info({}, 'lmtp_closed');
  }

  return { listen, close };
}
