/**
 * The admin HTTP API: /metrics (Prometheus), /healthz (process alive), /readyz (every readiness
 * check the composition root registers, with the reason for each that fails), and token-protected
 * operator routes (POST /replay …). It binds to loopback unless configured otherwise: these
 * routes can re-deliver mail.
 *
 * Routes are registered by the composition root (main.ts), so this module knows nothing of the
 * journal or the directory: it only frames HTTP, checks the token and maps errors (status.ts).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Config } from '../config/index.js';
import type { Observability } from '../core/deps.js';
import { bearerMatches, readBody, send, sendJson, serveHttp } from './http-io.js';
import { httpErrorFor } from './status.js';

export interface ReadinessCheck {
  name: string;
  /**
   * Resolves true when ready; false, a string (why not, shown to whoever polls /readyz at
   * 3 a.m.) or a rejection means not ready.
   */
  check: () => Promise<boolean | string>;
}

export type AdminHandler = (body: unknown, query: URLSearchParams) => Promise<unknown>;

export interface AdminRoute {
  method: 'GET' | 'POST';
  path: string;
  handler: AdminHandler;
}

export interface AdminServer {
  listen(): Promise<{ port: number; url: string }>;
  close(): Promise<void>;
}

const MAX_BODY = 64 * 1024;

export function createAdminServer(opts: {
  config: Config['admin'];
  obs: Observability;
  readiness: ReadinessCheck[];
  routes: AdminRoute[];
}): AdminServer {
  const { config, obs, readiness, routes } = opts;
  const log = obs.logger.child({ component: 'admin' });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://admin');
    if (req.method === 'GET' && url.pathname === '/metrics') {
      const text = await obs.metrics.metrics();
      return send(res, 200, text, obs.metrics.contentType);
    }
    if (req.method === 'GET' && url.pathname === '/healthz') return sendJson(res, 200, { ok: true });
    if (req.method === 'GET' && url.pathname === '/readyz') {
      const checks: Record<string, boolean> = {};
      const problems: Record<string, string> = {};
      await Promise.all(readiness.map(async (r) => {
        const result = await r.check().catch((err: unknown) => `check failed: ${(err as Error)?.message ?? String(err)}`);
        checks[r.name] = result === true;
        if (typeof result === 'string') problems[r.name] = result;
      }));
      const ok = Object.values(checks).every(Boolean);
      return sendJson(res, ok ? 200 : 503, ok ? { ok, checks } : { ok, checks, problems });
    }

    const route = routes.find((r) => r.path === url.pathname);
    if (!route) return sendJson(res, 404, { error: 'not found' });
    // Everything but metrics and health needs the token; with no token configured, nothing else is served.
    if (!config.token || !bearerMatches(req.headers.authorization, config.token)) {
      log.warn({ path: url.pathname, remote: req.socket.remoteAddress }, 'admin_forbidden');
      return sendJson(res, 401, { error: 'missing or wrong bearer token' });
    }
    if (req.method !== route.method) return sendJson(res, 405, { error: `use ${route.method}` });
    let body: unknown = undefined;
    if (req.method === 'POST') {
      const raw = await readBody(req, MAX_BODY);
      if (raw === null) {
        // Answer first, then drop the connection: the rest of the body is never read.
        res.setHeader('connection', 'close');
        res.on('finish', () => req.destroy());
        return sendJson(res, 413, { error: `body larger than ${MAX_BODY} bytes` });
      }
      try {
        body = raw.length ? JSON.parse(raw) : {};
      } catch {
        return sendJson(res, 400, { error: 'body is not JSON' });
      }
    }
    try {
      const result = await route.handler(body, url.searchParams);
      log.info({ path: url.pathname }, 'admin_request');
      return sendJson(res, 200, result);
    } catch (err) {
      const { status, body } = httpErrorFor(err);
      log.warn({ path: url.pathname, status, code: body.code, err: body.error }, 'admin_request_failed');
      return sendJson(res, status, body);
    }
  }

  return serveHttp({
    listen: config.listen, advertiseUrl: config.advertiseUrl, handle,
    onCrash: (err) => log.error({ err }, 'admin_handler_crashed'), crashBody: { error: 'internal error' },
  });
}

export { httpErrorFor, httpStatusFor, type HttpError } from './status.js';
export { bearerMatches, readBody, sendJson, serveHttp, type HttpListener } from './http-io.js';
