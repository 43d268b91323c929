/**
 * The agent's own HTTP port: GET /metrics and /healthz for anyone who can reach it; GET /report
 * and POST /ops/<name> only with the bearer token (none configured: refused). Loopback by default:
 * operations stop services and push mail between machines.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { bearerMatches, readBody, sendJson, serveHttp } from '../admin/index.js';
import type { Observability } from '../core/deps.js';
import { AgentError, type AgentErrorCode } from './errors.js';

const MAX_BODY = 16 * 1024;

/** Each error code's HTTP status: the caller can tell "fix your request" from "try later". */
const STATUS: Partial<Record<AgentErrorCode, number>> = {
  OP_UNKNOWN: 404,
  OP_BAD_ARGUMENT: 400,
  OP_REFUSED: 409,
  SLOT_BUSY: 409,
  OP_NOT_CONFIGURED: 501,
  COMMAND_FAILED: 502,
  COMMAND_TIMEOUT: 504,
};

export interface AgentHttpOptions {
  listen: { host: string; port: number };
  token: string | undefined;
  obs: Observability;
  /** Body of /healthz and whether the agent is healthy (its rounds are not stuck). */
  health: () => { ok: boolean; [k: string]: unknown };
  report: () => unknown;
  runOp: (name: string, body: unknown) => Promise<unknown>;
}

export interface AgentHttp {
  listen(): Promise<{ port: number; url: string }>;
  close(): Promise<void>;
}

export function createAgentHttp(opts: AgentHttpOptions): AgentHttp {
  const log = opts.obs.logger.child({ component: 'agent-http' });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://agent');
    if (req.method === 'GET' && url.pathname === '/metrics') {
      const text = await opts.obs.metrics.metrics();
      res.writeHead(200, { 'content-type': opts.obs.metrics.contentType });
      res.end(text);
      return;
    }
    if (req.method === 'GET' && url.pathname === '/healthz') {
      const h = opts.health();
      return sendJson(res, h.ok ? 200 : 503, h);
    }
    const isOp = url.pathname.startsWith('/ops/');
    if (!isOp && url.pathname !== '/report') return sendJson(res, 404, { error: 'not found', code: 'NOT_FOUND' });
    // The token comes before anything else, so an unauthenticated caller learns nothing, not even
    // which operation names exist.
    if (!bearerMatches(req.headers.authorization, opts.token)) {
      log.warn({ path: url.pathname, remote: req.socket.remoteAddress }, 'agent_forbidden');
      const why = opts.token ? 'missing or wrong bearer token' : 'agent.token is not set: operations are disabled';
      return sendJson(res, 401, { error: why, code: 'UNAUTHORIZED' });
    }
    if (!isOp) {
      if (req.method !== 'GET') return sendJson(res, 405, { error: 'use GET', code: 'METHOD' });
      return sendJson(res, 200, opts.report() ?? null);
    }
    if (req.method !== 'POST') return sendJson(res, 405, { error: 'use POST', code: 'METHOD' });
    const name = decodeURIComponent(url.pathname.slice('/ops/'.length));
    const raw = await readBody(req, MAX_BODY);
    if (raw === null) {
      res.setHeader('connection', 'close');
      res.on('finish', () => req.destroy());
      return sendJson(res, 413, { error: `body larger than ${MAX_BODY} bytes`, code: 'BODY_TOO_LARGE' });
    }
    let body: unknown;
    try {
      body = raw.trim() === '' ? {} : JSON.parse(raw);
    } catch {
      return sendJson(res, 400, { error: 'body is not JSON', code: 'OP_BAD_ARGUMENT' });
    }
    try {
      const result = await opts.runOp(name, body);
      return sendJson(res, 200, result);
    } catch (err) {
      if (err instanceof AgentError) {
        return sendJson(res, STATUS[err.code] ?? 500, { error: err.message, code: err.code, facts: err.facts });
      }
      log.error({ err, op: name }, 'agent_op_crashed');
      return sendJson(res, 500, { error: (err as Error).message, code: 'INTERNAL' });
    }
  }

  return serveHttp({
    listen: opts.listen, handle,
    onCrash: (err) => log.error({ err }, 'agent_http_crashed'), crashBody: { error: 'internal error', code: 'INTERNAL' },
  });
}
