/**
 * Asking an agent for an operation over its HTTP port (for the CLI and, later, the failover
 * runner). An agent that is not running fails fast (connection refused is immediate on a live
 * machine); one that does not answer fails at the deadline. Refusals come back as AgentErrors with
 * the agent's own code, so a caller handles "not the master" and "unknown op" the same way
 * whether it asked in-process or over HTTP.
 */
import { AgentError, errnoCode, type AgentErrorCode } from './errors.js';
import type { OpName, OpResult } from './ops.js';

export interface AgentClientOptions {
  /** The agent's base URL, e.g. http://10.0.0.5:9027. */
  url: string;
  token: string;
  /** Time allowed for the whole request; the operation's own deadline should be shorter. */
  timeoutMs: number;
}

export async function requestAgentOp(opts: AgentClientOptions, op: OpName, args: Record<string, unknown>): Promise<OpResult> {
  let res: Response;
  try {
    res = await fetch(`${opts.url.replace(/\/+$/, '')}/ops/${encodeURIComponent(op)}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${opts.token}` },
      body: JSON.stringify(args),
      signal: AbortSignal.timeout(opts.timeoutMs),
    });
  } catch (err) {
    const cause = (err as { cause?: unknown }).cause ?? err;
    const timedOut = (err as Error).name === 'TimeoutError';
    throw new AgentError(timedOut ? 'COMMAND_TIMEOUT' : 'AGENT_UNREACHABLE',
      timedOut ? `agent at ${opts.url} did not answer ${op} within ${opts.timeoutMs} ms`
        : `agent at ${opts.url} is not reachable (${errnoCode(cause)}): is \`storeroute agent\` running there?`,
      { url: opts.url, op, errno: errnoCode(cause) }, { cause: err });
  }
  const body = await res.json().catch(() => null) as (OpResult & { error?: string; code?: string; facts?: Record<string, unknown> }) | null;
  if (res.ok && body) return body;
  const code = (res.status === 401 ? 'AGENT_UNAUTHORIZED' : body?.code ?? 'COMMAND_FAILED') as AgentErrorCode;
  throw new AgentError(code, `agent at ${opts.url}: ${body?.error ?? `HTTP ${res.status}`}`, { url: opts.url, op, status: res.status, ...(body?.facts ?? {}) });
}
