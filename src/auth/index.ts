/**
 * The nginx auth_http endpoint: for every IMAP/POP3 (and SMTP) login nginx asks where to connect;
 * we answer from the directory so that after a failover every new login lands on the new master.
 * Protocol notes live in request.ts (what nginx sends) and response.ts (what it understands);
 * the decision itself in login.ts.
 */
import type { Config } from '../config/index.js';
import type { Directory } from '../directory/index.js';
import type { Observability } from '../core/deps.js';
import { addressSet, authConfigProblems, secretMatches } from './access.js';
import { ConfigError } from '../core/errors.js';
import { createLoginHandler } from './login.js';
import { isBadRequest, parseAuthRequest } from './request.js';
import { answers, STATUS_INVALID, type AuthAnswer } from './response.js';
import { createHttpServer, type Exchange, type HttpRequest } from './http.js';
import { authMetrics } from './metrics.js';
import { createMemoryThrottleStore, type ThrottleStore } from './throttle.js';
import { createRedisThrottleStore } from './throttle-redis.js';
import type { Cluster, Redis } from 'ioredis';

export { authConfigProblems, authConfigWarnings, EXAMPLE_SHARED_SECRET } from './access.js';
export type { SocketLayer } from './link.js';
export { hashPassword, verifyPassword, isPasswordHash, DEFAULT_SCRYPT, type ScryptParams } from './password.js';
export { createMemoryThrottleStore, type ThrottleStore, type ThrottleCounts } from './throttle.js';
export { createRedisThrottleStore, type RedisThrottleOptions } from './throttle-redis.js';

/** main.ts's spelling: counters in the directory's Redis (same key prefix); the client stays the caller's. */
export function createRedisThrottle(client: Redis | Cluster, keyPrefix: string, _throttle?: Config['auth']['throttle']): ThrottleStore {
  return createRedisThrottleStore({ client, keyPrefix });
}

/** main.ts's spelling: in-process counters for the embedded directory. */
export function createMemoryThrottle(_throttle?: Config['auth']['throttle']): ThrottleStore {
  return createMemoryThrottleStore();
}

/** How long a kept-alive nginx connection may sit idle (sent to nginx as Keep-Alive: timeout=5). */
const KEEP_ALIVE_TIMEOUT_MS = 5_000;

export interface AuthServerDeps {
  config: Config['auth'];
  directory: Directory;
  throttle: ThrottleStore;
  obs: Observability;
}

export interface AuthServer {
  listen(): Promise<{ port: number }>;
  close(): Promise<void>;
}

/** Throws a ConfigError naming `auth.sharedSecret` when the endpoint would answer anyone (see access.ts). */
export function createAuthServer(deps: AuthServerDeps): AuthServer {
  const { config, directory, throttle, obs } = deps;
  const problems = authConfigProblems(config);
  if (problems.length > 0) throw new ConfigError('(config)', problems);
  const logger = obs.logger.child({ component: 'auth' });
  if (!config.sharedSecret) logger.warn({ allowFrom: config.allowFrom }, 'auth_without_shared_secret');
  const allowFrom = addressSet(config.allowFrom);
  const secretHeader = config.sharedSecret?.header.toLowerCase();
  const secretValue = config.sharedSecret ? Buffer.from(config.sharedSecret.value, 'utf8') : null;
  const handler = createLoginHandler(config, directory, throttle, logger);
  const record = authMetrics(obs.metrics, () => handler.holds.size);

  const debugOn = () => logger.isLevelEnabled('debug');

  /** Writes the answer, counts it, logs it. No per-request closures: this is the hot path. */
  function finish(exchange: Exchange, protocol: string, started: number, answer: AuthAnswer, fields: Record<string, unknown>): void {
    const headers = answer.headers;
    exchange.respond(answer.httpStatus, headers);
    record(protocol, answer.result, (performance.now() - started) / 1000);
    if (answer.result === 'ok' && !debugOn()) return;
    const line = { result: answer.result, status: headers['Auth-Status'], wait: headers['Auth-Wait'], ...fields };
    if (answer.result === 'ok') logger.debug(line, 'auth_ok');
    else if (answer.result === 'forbidden') logger.warn(line, 'auth_forbidden');
    else logger.info(line, `auth_${answer.result}`);
  }

  async function onRequest(req: HttpRequest, exchange: Exchange): Promise<void> {
    const started = performance.now();
    const path = req.target === config.path ? config.path : req.target.split('?', 1)[0];
    if (req.method !== 'GET' || path !== config.path) {
      exchange.respond(req.method !== 'GET' ? 405 : 404, {});
      return;
    }
    const remote = req.remoteAddress;
    if (!allowFrom.has(remote)) return finish(exchange, 'unknown', started, answers.forbidden(), { remote, why: 'address-not-allowed' });
    if (secretValue && !secretMatches(req.headers[secretHeader!], secretValue)) {
      const why = req.headers[secretHeader!] === undefined ? 'secret-missing' : 'secret-wrong';
      return finish(exchange, 'unknown', started, answers.forbidden(), { remote, why });
    }

    const parsed = parseAuthRequest(req.headers);
    const protocol = parsed.protocol ?? 'unknown';
    if (isBadRequest(parsed)) {
      // No Auth-Wait: nginx closes the client's connection. Only the problem is logged, not the value.
      return finish(exchange, protocol, started, answers.invalid(null, 'bad_request'),
        { problem: parsed.problem, clientIp: parsed.clientIp, attempt: parsed.attempt });
    }
    try {
      const outcome = await handler.decide(parsed);
      finish(exchange, protocol, started, outcome.answer,
        { user: parsed.user, clientIp: parsed.clientIp, protocol, attempt: parsed.attempt, ...outcome.detail });
    } catch (err) {
      // Nothing here is expected to throw; if it does the answer is transient, never a refusal.
      const who = { user: parsed.user, clientIp: parsed.clientIp, protocol, attempt: parsed.attempt };
      logger.error({ err, ...who }, 'auth_internal_error');
      finish(exchange, protocol, started,
        answers.temporary(parsed.attempt < config.maxLoginAttempts && config.failWaitSeconds > 0 ? config.failWaitSeconds : null), who);
    }
  }

  // A request that cannot be read gets a clean answer nginx understands: a refusal without
  // Auth-Wait, so it closes that session (400, or 431 for an over-long head).
  const refusal = { headers: { 'Auth-Status': STATUS_INVALID } };
  const server = createHttpServer({
    maxHeaderBytes: config.maxHeaderBytes,
    requestTimeoutMs: config.requestTimeoutMs,
    keepAliveTimeoutMs: KEEP_ALIVE_TIMEOUT_MS,
  }, {
    request: (req, exchange) => void onRequest(req, exchange),
    badRequest(problem, remote) {
      logger.info({ code: problem, remote }, problem === 'header-too-large' ? 'auth_request_too_large' : 'auth_bad_http');
      record('unknown', 'bad_request', 0);
      return refusal;
    },
    timeout(remote) {
      logger.info({ remote, timeoutMs: config.requestTimeoutMs }, 'auth_request_timeout');
    },
  }, {
    socketLayer: config.socketLayer,
    onFallback: (reason) => logger.warn({ wanted: 'handle', using: 'net', reason }, 'auth_socket_layer_fallback'),
  });

  let closed = false;
  return {
    listen: () => server.listen(config.listen.port, config.listen.host),
    async close() {
      if (closed) return;
      closed = true;
      handler.close();
      await server.close();
    },
  };
}
