/**
 * The proxy instance registry, so that a replay reaches every instance's journal: each instance
 * heartbeats an entry into one Redis hash, and the CLI fans a replay out to every live one over
 * its admin API. Layout (shared with the heartbeat writer in src/admin):
 *
 *   key    <keyPrefix>{instances}           a hash, one field per instance
 *   field  instance name                    config.admin.instanceName, default host:port
 *   value  JSON {"url": …, "token"?: …, "lastSeen": <epoch ms>}
 *
 * An entry is live while lastSeen is within `staleAfterMs` (3 heartbeats); stale entries are
 * ignored, never deleted here (the instance may only be slow).
 */
import type { ReplayRequestInput } from './replay-request.js';
import type { ReplayItem, ReplaySummary } from './replay.js';

export interface InstanceEntry {
  url: string;
  token?: string;
  /** Epoch ms of the last heartbeat. */
  lastSeen: number;
}

export interface NamedInstance extends InstanceEntry {
  name: string;
}

/** The hash's key; `{instances}` is its own Cluster hash tag (no script touches it with others). */
export function instancesKey(keyPrefix: string): string {
  return `${keyPrefix}{instances}`;
}

export function encodeInstance(entry: InstanceEntry): string {
  return JSON.stringify({ url: entry.url, ...(entry.token ? { token: entry.token } : {}), lastSeen: entry.lastSeen });
}

/** null for anything that is not a well-formed entry (written by another version, or damaged). */
export function decodeInstance(raw: string): InstanceEntry | null {
  try {
    const v = JSON.parse(raw) as Record<string, unknown>;
    if (typeof v.url !== 'string' || typeof v.lastSeen !== 'number' || !Number.isFinite(v.lastSeen)) return null;
    new URL(v.url);
    return { url: v.url, lastSeen: v.lastSeen, ...(typeof v.token === 'string' ? { token: v.token } : {}) };
  } catch {
    return null;
  }
}

/** The minimal Redis surface needed (an ioredis client fits). */
export interface HashReader {
  hgetall(key: string): Promise<Record<string, string>>;
}

export interface InstanceList {
  live: NamedInstance[];
  stale: NamedInstance[];
  /** Fields whose value could not be decoded. */
  invalid: string[];
}

export async function listInstances(redis: HashReader, keyPrefix: string, staleAfterMs: number, now = Date.now()): Promise<InstanceList> {
  const raw = await redis.hgetall(instancesKey(keyPrefix));
  const out: InstanceList = { live: [], stale: [], invalid: [] };
  for (const [name, value] of Object.entries(raw).sort(([a], [b]) => a.localeCompare(b))) {
    const entry = decodeInstance(value);
    if (!entry) out.invalid.push(name);
    else (now - entry.lastSeen <= staleAfterMs ? out.live : out.stale).push({ name, ...entry });
  }
  return out;
}

export interface InstanceReplayResult {
  instance: string;
  url: string;
  summary?: ReplaySummary;
  error?: string;
}

/**
 * POSTs the replay request to one instance's admin API (`<url>/replay`, bearer token). An HTTP
 * error or an unreachable instance is returned as `error`, not thrown: the others still run.
 */
export async function replayOnInstance(instance: NamedInstance, request: ReplayRequestInput, token: string | undefined,
  timeoutMs: number): Promise<InstanceReplayResult> {
  const url = new URL('replay', instance.url.endsWith('/') ? instance.url : `${instance.url}/`).toString();
  const bearer = instance.token ?? token;
  try {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(bearer ? { authorization: `Bearer ${bearer}` } : {}) },
      body: JSON.stringify(request),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = null;
    }
    if (!res.ok) {
      const msg = body && typeof body === 'object' && 'error' in body ? String((body as { error: unknown }).error) : text.slice(0, 200);
      return { instance: instance.name, url, error: `HTTP ${res.status}: ${msg}` };
    }
    const summary = body as ReplaySummary;
    summary.items = (summary.items ?? []).map((i: ReplayItem) => ({ ...i, instance: instance.name }));
    return { instance: instance.name, url, summary };
  } catch (err) {
    return { instance: instance.name, url, error: (err as Error).message };
  }
}

/** Adds up the instances' summaries (items concatenated, each tagged with its instance). */
export function sumSummaries(store: string, dryRun: boolean, summaries: ReplaySummary[]): ReplaySummary {
  const total: ReplaySummary = { store, master: summaries[0]?.master ?? '', selected: 0, alreadyPresent: 0, delivered: 0,
    refused: 0, failed: 0, skippedAlreadyReplayed: 0, wouldDeliver: 0, dryRun, items: [] };
  for (const s of summaries) {
    for (const k of ['selected', 'alreadyPresent', 'delivered', 'refused', 'failed', 'skippedAlreadyReplayed', 'wouldDeliver'] as const) {
      total[k] += s[k] ?? 0;
    }
    total.items.push(...s.items);
  }
  return total;
}
