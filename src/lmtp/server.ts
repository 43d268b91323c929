/**
 * The LMTP listener: smtp-server in LMTP mode (postfix's next hop) wired to the session hooks
 * (hooks.ts: MAIL, RCPT, DATA, each moving the client's session state machine in session.ts), the
 * backend pool, and the listening sockets; plus graceful shutdown.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { unlink } from 'node:fs/promises';
import { format } from 'node:util';
import type { Logger } from 'pino';
import { SMTPServer } from 'smtp-server';
import { formatReply } from '../core/replies.js';
import type { Config } from '../config/index.js';
import type { Directory } from '../directory/index.js';
import type { JournalSink } from '../journal/index.js';
import type { Observability } from '../core/deps.js';
import { applySmtpServerPatches } from './smtp-patch.js';
import { BackendPool } from './pool.js';
import { backendTimeouts } from './deliver.js';
import { createLmtpMetrics, type LmtpMetrics } from './metrics.js';
import { RcptRejectLog } from './reject-log.js';
import { InflightBySlot } from './inflight.js';
import { createSessionHooks } from './hooks.js';
import { lmtpReply, smtpServerText } from './reply.js';

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
  /** Deliveries in flight per backend slot (admin `GET /inflight`, a failover's hold). */
  readonly inflight: InflightBySlot;
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
  let shuttingDown = false;
  const inflight = new InflightBySlot();
  const hooks = createSessionHooks({
    config, directory, journal, pool, metrics, rejectLog, logger, shuttingDown: () => shuttingDown, inflight,
    messageIdDomain: !journal ? null : journalConfig.addMessageId ? (journalConfig.messageIdDomain ?? config.hostname) : '',
  });
  const listeners: Server[] = [];
  const openSockets = new Set<Socket>();
  const idPrefix = randomBytes(5).toString('hex');
  let connections = 0;

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
    onConnect: hooks.onConnect,
    onMailFrom: hooks.onMailFrom,
    onRcptTo: hooks.onRcptTo,
    onData: hooks.onData,
    onClose: hooks.onClose,
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
      socket.end(`${formatReply(lmtpReply('SHUTTING_DOWN'))}\r\n`);
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
    const bye = lmtpReply('SHUTTING_DOWN');
    const idleOut = () => {
      for (const conn of smtp.connections) {
        if (!hooks.inTransaction(conn.session)) conn.send(bye.code, smtpServerText(bye));
      }
    };
    idleOut();
    const until = Date.now() + graceMs;
    while (Date.now() < until && hooks.anyInTransaction()) {
      await new Promise((r) => setTimeout(r, 20));
      idleOut();
    }
    for (const conn of smtp.connections) conn.send(bye.code, smtpServerText(bye));
    for (const s of openSockets) s.destroy();
    await pool.close();
    rejectLog.flush();
    await new Promise<void>((r) => smtp.close(() => r()));
    await stopped;
    logger.info({}, 'lmtp_closed');
  }

  return { listen, close, inflight };
}
