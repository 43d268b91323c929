/**
 * The decision for one parsed login: route it, refuse it, or hold it. Pure of HTTP: takes an
 * AuthRequest, returns an AuthAnswer (see response.ts). index.ts does the wire, metrics and logs.
 *
 * Hiding which users exist: an unknown user gets exactly the bytes of a wrong password, but only
 * `verify: directory` can make the two indistinguishable. In `verify: backend` we answer an
 * unknown user ourselves at once (Invalid + Auth-Wait), while a known user is routed (OK) and the
 * wrong password is refused by Cyrus, after its ~3 s failed-login delay, with Cyrus's own text.
 * A client therefore tells "no such user" (fast, our text) from "wrong password" (slow, Cyrus's
 * text) by timing and wording. Backend mode cannot fix that without knowing the password; where
 * user enumeration matters, use directory mode (scrypt hash on the user record, the same work
 * burnt for unknown users: burnVerification).
 */
import type { Logger } from 'pino';
import type { Config } from '../config/index.js';
import type { Directory, Route } from '../directory/index.js';
import { withDeadline } from '../core/deadline.js';
import { StorerouteError } from '../core/errors.js';
import { answers, type AuthAnswer } from './response.js';
import { passwordBytes, type AuthRequest } from './request.js';
import { throttlePolicy, type ThrottleCounts, type ThrottleStore } from './throttle.js';
import { createHoldTracker, type HoldTracker } from './hold.js';
import { addressSet } from './access.js';
import { burnVerification, verifyPassword } from './password.js';

type AuthConfig = Config['auth'];

/** Why a login is held rather than answered. */
export type HoldReason = 'store-failing-over' | 'store-down' | 'user-moving' | 'master-not-up' | 'directory-unavailable';

export interface LoginOutcome {
  answer: AuthAnswer;
  /** For the log line: why it was held / refused, what it routed to. */
  detail: Record<string, unknown>;
}

export interface LoginHandler {
  decide(req: AuthRequest): Promise<LoginOutcome>;
  readonly holds: HoldTracker;
  close(): void;
}

const THROTTLE_DEADLINE_MS = 1_000;

export function createLoginHandler(config: AuthConfig, directory: Directory, throttle: ThrottleStore, logger: Logger): LoginHandler {
  const exempt = addressSet(config.throttle.exempt);
  const localDomains = new Set(config.localDomains.map((d) => d.toLowerCase()));
  const holds = createHoldTracker({
    // Longer than any gap between two asks of one held session (WAIT interval, failure wait, a slow lookup).
    staleMs: (config.holdWaitSeconds + config.failWaitSeconds) * 1000 + config.lookupTimeoutMs + 5_000,
  });
  const windowMs = config.throttle.windowSeconds * 1000;

  function waitFor(req: AuthRequest, seconds: number): number | null {
    // Past the attempt limit no Auth-Wait: nginx then closes the connection. Auth-Wait 0 means the same.
    return req.attempt < config.maxLoginAttempts && seconds > 0 ? seconds : null;
  }

  async function throttleCounts(ip: string, user: string): Promise<ThrottleCounts | null> {
    try {
      // In-process counters answer at once; only a network store needs (and pays for) a deadline timer.
      if (throttle.kind === 'memory') return await throttle.counts(ip, user);
      return await withDeadline(throttle.counts(ip, user), THROTTLE_DEADLINE_MS, 'throttle read');
    } catch (err) {
      // Fail open: a throttle outage must not lock every user out; the directory lookup that
      // follows still decides (and holds logins if it is down too).
      logger.warn({ err, store: throttle.kind }, 'auth_throttle_unavailable');
      return null;
    }
  }

  async function failure(req: AuthRequest, userKey: string, counted: boolean, detail: Record<string, unknown>,
    result: 'invalid' | 'throttled' = 'invalid'): Promise<LoginOutcome> {
    let wait = config.failWaitSeconds;
    if (counted) {
      try {
        const after = await withDeadline(throttle.recordFailure(req.clientIp, userKey, windowMs), THROTTLE_DEADLINE_MS, 'throttle write');
        wait = throttlePolicy.waitSeconds(after, config.throttle, config.failWaitSeconds);
        detail = { ...detail, ipFailures: after.ip, userFailures: after.user };
      } catch (err) {
        logger.warn({ err, store: throttle.kind }, 'auth_throttle_unavailable');
      }
    }
    return { answer: answers.invalid(waitFor(req, wait), result), detail };
  }

  function hold(req: AuthRequest, userKey: string, reason: HoldReason, detail: Record<string, unknown>): LoginOutcome {
    const key = `${req.protocol}\u0000${userKey}\u0000${req.clientIp}`;
    const heldMs = holds.held(key);
    if (heldMs >= config.holdMaxMs) {
      return { answer: answers.temporary(waitFor(req, config.failWaitSeconds)), detail: { ...detail, reason, heldMs } };
    }
    return { answer: answers.wait(config.holdWaitSeconds), detail: { ...detail, reason, heldMs } };
  }

  /**
   * One directory lookup under lookupTimeoutMs. A cache hit has settled by the next microtask:
   * it is taken without arming a timer (a timer per login was a measurable share of its cost).
   */
  async function lookup(name: string): Promise<Route | null> {
    const hit: { done: boolean; route: Route | null } = { done: false, route: null };
    const work = directory.resolve(name).then((route) => { hit.done = true; hit.route = route; return route; });
    await null;
    if (hit.done) return hit.route;
    return withDeadline(work, config.lookupTimeoutMs, 'directory lookup');
  }

  async function resolve(name: string): Promise<Route | null> {
    const route = await lookup(name);
    if (route || !config.stripDomain) return route;
    const at = name.lastIndexOf('@');
    if (at <= 0) return null;
    const domain = name.slice(at + 1);
    if (localDomains.size > 0 && !localDomains.has(domain)) return null;
    return lookup(name.slice(0, at));
  }

  async function decide(req: AuthRequest): Promise<LoginOutcome> {
    // apop / cram-md5 / external would need the plaintext or a client certificate we do not check.
    const method = req.method;
    const noAuthSmtp = req.protocol === 'smtp' && method === 'none';
    if (method !== 'plain' && method !== 'login' && !noAuthSmtp) return { answer: answers.unsupportedMethod(), detail: { method } };

    if (req.protocol === 'smtp') {
      if (!config.smtp) return { answer: answers.smtpRefused(), detail: {} };
      if (noAuthSmtp || config.verify === 'backend') {
        return { answer: answers.ok(config.smtp.server, config.smtp.port), detail: { server: config.smtp.server } };
      }
    }

    const userKey = req.user.toLowerCase();
    const counted = config.throttle.enabled && !exempt.has(req.clientIp);
    if (counted) {
      const counts = await throttleCounts(req.clientIp, userKey);
      if (counts && throttlePolicy.throttled(counts, config.throttle)) {
        return failure(req, userKey, true, { ipFailures: counts.ip, userFailures: counts.user }, 'throttled');
      }
    }

    let route: Route | null;
    try {
      route = await resolve(userKey);
    } catch (err) {
      // Transient by default: any lookup failure (unavailable, deadline, a bug) holds the login.
      const code = err instanceof StorerouteError ? err.code : 'INTERNAL';
      logger.warn({ err, code }, 'auth_directory_error');
      return hold(req, userKey, 'directory-unavailable', { code });
    }

    if (config.verify === 'directory') {
      const pass = passwordBytes(req);
      if (!pass) return failure(req, userKey, counted, { why: 'bad-password-encoding' });
      const hash = route?.user.passwordHash;
      if (!hash) {
        await burnVerification(pass);
        return failure(req, userKey, counted, { known: route !== null, why: route ? 'no-password-hash' : 'unknown-user' });
      }
      if (!(await verifyPassword(pass, hash))) return failure(req, userKey, counted, { why: 'wrong-password' });
    }
    // Unknown and suspended users get exactly the answer of a wrong password.
    if (!route) return failure(req, userKey, counted, { why: 'unknown-user' });
    const { user, store, master } = route;
    if (user.state === 'suspended') return failure(req, userKey, counted, { why: 'suspended' });

    const backendUser = user.name !== req.user ? user.name : undefined;
    // Submission goes to the relay, which does not depend on the user's mailbox store being up.
    if (req.protocol === 'smtp') return { answer: answers.ok(config.smtp!.server, config.smtp!.port, backendUser), detail: { server: config.smtp!.server } };

    const detail = { store: store.name, slot: master.name, epoch: store.epoch, version: route.version };
    if (user.state === 'moving') return hold(req, userKey, 'user-moving', detail);
    if (store.state === 'failing-over') return hold(req, userKey, 'store-failing-over', detail);
    if (store.state === 'down') return hold(req, userKey, 'store-down', detail);
    if (master.state !== 'up') return hold(req, userKey, 'master-not-up', detail);

    if (holds.size > 0) holds.release(`${req.protocol}\u0000${userKey}\u0000${req.clientIp}`);
    const port = req.protocol === 'imap' ? master.imap : master.pop3;
    return { answer: answers.ok(master.ip, port, backendUser), detail };
  }

  return { decide, holds, close: () => holds.close() };
}
