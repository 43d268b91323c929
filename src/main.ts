/**
 * Composition root: config → logger, metrics, directory → journal → LMTP proxy, auth_http, admin
 * API (its POST /replay and the instance heartbeat come from replay/); signals and draining. The
 * only place where capabilities meet. Nothing runs at import.
 */
import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import { Registry, collectDefaultMetrics } from 'prom-client';
import type { Config } from './config/index.js';
import { adminConfigWarnings } from './config/sections/admin.js';
import type { Observability } from './core/deps.js';
import { createLogger } from './core/logger.js';
import { ConfigError, type FileProblem } from './core/errors.js';
import { closeRedisClient, createDirectory, createRedisClient, type Directory } from './directory/index.js';
import { openJournal, type Journal } from './journal/index.js';
import { createLmtpServer, inflightAnswer, type LmtpServer } from './lmtp/index.js';
import { authConfigProblems, authConfigWarnings, createAuthServer, createMemoryThrottle, createRedisThrottle } from './auth/index.js';
import { createAdminServer, type AdminRoute } from './admin/index.js';
import { replayStore, parseReplayRequest, startHeartbeat } from './replay/index.js';

export interface Running {
  /** Bound addresses, for tests and the start-up log. */
  lmtp?: { port?: number; socket?: string };
  auth?: { port: number };
  admin?: { port: number; url: string };
  directory: Directory;
  journal?: Journal;
  obs: Observability;
  /** Graceful stop: stop accepting, drain LMTP for up to lmtp.shutdownGraceMs, close the rest. */
  stop(): Promise<void>;
}

/** The production logger (core/logger.ts), re-exported for `serve`. */
export { createLogger, LOG_BATCH_BYTES, LOG_FLUSH_MS } from './core/logger.js';

export function createMetrics(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'storeroute_' });
  return registry;
}

/**
 * Rules that need more than one key, or the filesystem, checked before anything starts and
 * reported together (the schema already reported the single-key problems):
 * - an embedded directory file that does not exist (a typo in the path, a missing volume) would
 *   start an empty directory in which every recipient is unknown, and every message would bounce;
 *   unless a seed says what the first directory is, refuse;
 * - auth_http without a shared secret (see auth/access.ts).
 */
export function startupProblems(config: Config): FileProblem[] {
  const problems: FileProblem[] = [];
  const d = config.directory;
  if (d.backend === 'embedded' && !d.embedded.seed && !existsSync(d.embedded.file)) {
    problems.push({
      path: 'directory.embedded.file',
      message: `${d.embedded.file} does not exist and no directory.embedded.seed is set: refusing to serve an empty directory ` +
        '(every recipient would be unknown). Create it with `storeroute directory apply FILE`, or set a seed.',
    });
  }
  problems.push(...authConfigProblems(config.auth));
  return problems;
}

/** What is unsafe but servable (the example's public secrets): logged at every start. */
export function startupWarnings(config: Config): FileProblem[] {
  return [...authConfigWarnings(config.auth), ...adminConfigWarnings(config)];
}

export async function startStoreroute(config: Config, logger = createLogger(config.log)): Promise<Running> {
  const problems = startupProblems(config);
  if (problems.length > 0) throw new ConfigError('(config)', problems);
  const obs: Observability = { logger, metrics: createMetrics() };
  // Said at every start, not once: a warning that scrolled away on the first day is no warning.
  for (const w of startupWarnings(config)) logger.warn({ path: w.path, problem: w.message }, 'config_warning');
  const stops: Array<() => Promise<void>> = [];
  // Unwind what started so far if a later part fails: a half-started proxy must not linger.
  const unwind = async () => {
    for (const stop of stops.reverse()) await stop().catch((err: unknown) => logger.warn({ err }, 'stop_failed'));
  };

  try {
    // One command connection to Redis, opened and closed here, lent to the directory, the auth
    // throttle and the instance heartbeat (the directory adds its subscriber, which cannot be
    // shared): two connections per process. Closed last, after everything that borrows it.
    const redis = config.directory.backend === 'redis'
      ? createRedisClient(config.directory.redis, obs, { role: 'command' }) : undefined;
    if (redis) stops.push(() => closeRedisClient(redis));

    const directory = await createDirectory(config.directory, obs, { redis });
    stops.push(() => directory.close());

    const journal = config.journal.enabled ? await openJournal(config.journal, obs) : undefined;
    if (journal) stops.push(() => journal.close());

    const running: Running = { directory, journal, obs, stop: async () => undefined };

    let lmtp: LmtpServer | null = null;
    if (config.lmtp.enabled) {
      lmtp = createLmtpServer({ config: config.lmtp, journalConfig: config.journal, directory, journal, obs });
      running.lmtp = await lmtp.listen();
      // LMTP drains first (it is pushed last and stops are run in reverse).
      const server = lmtp;
      stops.push(() => server.close(config.lmtp.shutdownGraceMs));
    }

    if (config.auth.enabled) {
      const throttle = redis
        ? createRedisThrottle(redis, config.directory.redis.keyPrefix, config.auth.throttle)
        : createMemoryThrottle(config.auth.throttle);
      stops.push(() => throttle.close());
      const auth = createAuthServer({ config: config.auth, directory, throttle, obs });
      running.auth = await auth.listen();
      stops.push(() => auth.close());
    }

    if (config.admin.enabled) {
      const routes: AdminRoute[] = [];
      if (journal) {
        routes.push({
          method: 'POST',
          path: '/replay',
          // Validated here so a forged or malformed request changes nothing (400 with every problem).
          handler: (body) => replayStore({ ...parseReplayRequest(body), journal, directory, imap: config.replay, obs }),
        });
      }
      // A failover's hold asks each proxy whether it still has deliveries in flight to the old master.
      const inflight = lmtp?.inflight ?? null;
      routes.push({ method: 'GET', path: '/inflight', handler: (_body, query) => inflightAnswer(directory, inflight, query) });
      const admin = createAdminServer({
        config: config.admin,
        obs,
        readiness: [
          // Reachable, holding a layout, its invalidation feed live (or, embedded, its file sane):
          // a directory with no stores would make every recipient unknown.
          { name: 'directory', check: async () => {
            const r = await directory.readiness();
            return r.ok || r.problems.join('; ');
          } },
          { name: 'journal', check: async () => (journal ? (await journal.problem()) ?? true : true) },
        ],
        routes,
      });
      running.admin = await admin.listen();
      stops.push(() => admin.close());
      if (redis) {
        const name = config.admin.instanceName ?? `${hostname()}:${running.admin.port}`;
        const hb = startHeartbeat({ redis, keyPrefix: config.directory.redis.keyPrefix, name, url: running.admin.url,
          intervalMs: config.admin.heartbeatMs, obs, token: config.admin.token });
        stops.push(() => hb.stop());
      }
    }

    running.stop = unwind;
    logger.info({ lmtp: running.lmtp, auth: running.auth, admin: running.admin, directory: directory.kind, journal: Boolean(journal) }, 'storeroute_started');
    return running;
  } catch (err) {
    await unwind();
    throw err;
  }
}

/** Signals: SIGTERM/SIGINT drain and exit 0; a second signal exits at once. */
export function handleSignals(running: Running, logger: Logger): void {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, 'storeroute_forced_exit');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'storeroute_stopping');
    running.stop().then(
      () => { logger.info('storeroute_stopped'); process.exit(0); },
      (err: unknown) => { logger.error({ err }, 'storeroute_stop_failed'); process.exit(1); },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  // An unexpected throw leaves state we cannot reason about; exit and let the supervisor restart
  // us. Nothing is lost: postfix re-sends whatever we had not acknowledged.
  process.on('uncaughtException', (err) => { logger.fatal({ err }, 'uncaught_exception'); process.exit(70); });
  process.on('unhandledRejection', (err) => { logger.fatal({ err }, 'unhandled_rejection'); process.exit(70); });
}
