/**
 * The proxy instance registry, so that a replay reaches every instance's journal: each instance
 * heartbeats an entry into one Redis hash, and the CLI fans a replay out to every live one over
 * its admin API. Layout (shared with the heartbeat writer, replay/heartbeat.ts):
 *
 *   key    <keyPrefix>{instances}           a hash, one field per instance (core/redis-keys.ts)
 *   field  instance name                    config.admin.instanceName, default host:port
 *   value  JSON {"url": …, "lastSeen": <epoch ms>, "sig"?: "v1:<base64url HMAC-SHA256>"}
 *
 * The CLI sends the admin bearer token to these URLs, and whoever can write one Redis key could
 * otherwise register a URL of theirs and collect it. So each entry is signed with a key derived
 * from admin.token (which an attacker who can write Redis does not know), over the instance name,
 * url and lastSeen; the CLI sends the token only to entries whose signature verifies.
 *
 * An entry is live while lastSeen is within `staleAfterMs` (3 heartbeats); stale entries are
 * ignored, never deleted here (the instance may only be slow).
 */
import { createHmac, scrypt, timingSafeEqual } from 'node:crypto';
import { instancesKey } from '../core/redis-keys.js';
import type { ReplayRequestInput } from './request.js';
import type { ReplayItem, ReplaySummary } from './replay.js';

export interface InstanceEntry {
  url: string;
  /** Epoch ms of the last heartbeat. */
  lastSeen: number;
  /** "v1:" + base64url HMAC-SHA256; absent when the instance has no admin.token. */
  sig?: string;
}

export interface NamedInstance extends InstanceEntry {
  name: string;
}

/** Why an entry was not trusted with the token (stable codes, printed by the CLI). */
export type RegistryRejection = 'INSTANCE_UNSIGNED' | 'INSTANCE_BAD_SIGNATURE';

/** Why a trusted instance's replay did not produce a summary. */
export type InstanceFailureCode =
  /** 401/403: this admin.token is not the instance's. Retrying will not help. */
  | 'INSTANCE_UNAUTHORIZED'
  /** Another 4xx: the instance refused the request (e.g. an unknown store). */
  | 'INSTANCE_REFUSED'
  /** Unreachable, timed out, or 5xx: retrying later may work. */
  | 'INSTANCE_UNAVAILABLE'
  /** 200 but not a replay summary: a different program or version answered. */
  | 'INSTANCE_BAD_RESPONSE';

const SIG_VERSION = 'v1';
/** Fixed salt: the key only has to differ from the token itself and from other uses of it. */
const KEY_SALT = 'storeroute-instance-registry-v1';

/** The hash's key, built with every other key in core/redis-keys.ts (re-exported for the CLI's tests). */
export { instancesKey };

/**
 * The registry signing key for an admin token. scrypt rather than a plain HMAC of the token:
 * signed entries sit in Redis, so whoever can read Redis may test guesses of the token offline;
 * each guess then costs ~16 MiB and tens of milliseconds instead of one hash. Derive it once.
 */
export function registryKey(token: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(token, KEY_SALT, 32, { N: 2 ** 14, r: 8, p: 1 }, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

function mac(key: Buffer, name: string, url: string, lastSeen: number): Buffer {
  // A JSON array: unambiguous whatever characters the name or url hold.
  return createHmac('sha256', key).update(JSON.stringify([SIG_VERSION, name, url, lastSeen])).digest();
}

/** The entry with its signature; the name is covered too, so a valid entry cannot be re-filed under another. */
export function signInstance(name: string, entry: { url: string; lastSeen: number }, key: Buffer): InstanceEntry {
  return { url: entry.url, lastSeen: entry.lastSeen, sig: `${SIG_VERSION}:${mac(key, name, entry.url, entry.lastSeen).toString('base64url')}` };
}

/** null when the entry may be sent the token; otherwise why not. Constant time in the signature. */
export function verifyInstance(instance: NamedInstance, key: Buffer): RegistryRejection | null {
  if (instance.sig === undefined) return 'INSTANCE_UNSIGNED';
  const prefix = `${SIG_VERSION}:`;
  if (!instance.sig.startsWith(prefix)) return 'INSTANCE_BAD_SIGNATURE';
  const given = Buffer.from(instance.sig.slice(prefix.length), 'base64url');
  const expected = mac(key, instance.name, instance.url, instance.lastSeen);
  // timingSafeEqual needs equal lengths; the length of a forged value reveals nothing secret.
  return given.length === expected.length && timingSafeEqual(given, expected) ? null : 'INSTANCE_BAD_SIGNATURE';
}

export function encodeInstance(entry: InstanceEntry): string {
  return JSON.stringify({ url: entry.url, lastSeen: entry.lastSeen, ...(entry.sig !== undefined ? { sig: entry.sig } : {}) });
}

/** null for anything that is not a well-formed entry (written by another version, or damaged). */
export function decodeInstance(raw: string): InstanceEntry | null {
  try {
    const v = JSON.parse(raw) as Record<string, unknown>;
    if (typeof v.url !== 'string' || typeof v.lastSeen !== 'number' || !Number.isFinite(v.lastSeen)) return null;
    if (v.sig !== undefined && typeof v.sig !== 'string') return null;
    new URL(v.url);
    // A "token" field (written by earlier versions) is ignored: the registry must not choose the bearer.
    return { url: v.url, lastSeen: v.lastSeen, ...(typeof v.sig === 'string' ? { sig: v.sig } : {}) };
  } catch {
    return null;
  }
}

/** The minimal Redis surface needed (an ioredis client fits). */
export interface HashReader {
  hgetall(key: string): Promise<Record<string, string>>;
}

export interface InstanceList {
  /** Signed with the key and recent: the only ones a replay may be sent to. */
  live: NamedInstance[];
  /** Signed, but not seen for staleAfterMs. */
  stale: NamedInstance[];
  /** Unsigned or badly signed: never sent the token. */
  untrusted: Array<NamedInstance & { reason: RegistryRejection }>;
  /** Fields whose value could not be decoded. */
  invalid: string[];
}

export async function listInstances(redis: HashReader, keyPrefix: string,
  opts: { staleAfterMs: number; key: Buffer; now?: number }): Promise<InstanceList> {
  const now = opts.now ?? Date.now();
  const raw = await redis.hgetall(instancesKey(keyPrefix));
  const out: InstanceList = { live: [], stale: [], untrusted: [], invalid: [] };
  for (const [name, value] of Object.entries(raw).sort(([a], [b]) => a.localeCompare(b))) {
    const entry = decodeInstance(value);
    if (!entry) {
      out.invalid.push(name);
      continue;
    }
    const instance = { name, ...entry };
    const rejected = verifyInstance(instance, opts.key);
    if (rejected) out.untrusted.push({ ...instance, reason: rejected });
    else (now - entry.lastSeen <= opts.staleAfterMs ? out.live : out.stale).push(instance);
  }
  return out;
}

export interface InstanceReplayResult {
  instance: string;
  url: string;
  summary?: ReplaySummary;
  error?: { code: InstanceFailureCode; message: string };
}

/** Text from the other side, safe to print on a terminal and short. */
function printable(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\x00-\x1f\x7f]+/g, ' ').trim().slice(0, 300);
}

function isSummary(v: unknown): v is ReplaySummary {
  return typeof v === 'object' && v !== null && typeof (v as ReplaySummary).selected === 'number' && Array.isArray((v as ReplaySummary).items);
}

/**
 * POSTs the replay request to one verified instance's admin API (`<url>/replay`, bearer token).
 * An HTTP error or an unreachable instance is returned as `error`, not thrown: the others still run.
 */
export async function replayOnInstance(instance: NamedInstance, request: ReplayRequestInput, token: string,
  timeoutMs: number): Promise<InstanceReplayResult> {
  const url = new URL('replay', instance.url.endsWith('/') ? instance.url : `${instance.url}/`).toString();
  const fail = (code: InstanceFailureCode, message: string): InstanceReplayResult => ({ instance: instance.name, url, error: { code, message } });
  let res: Response;
  let text: string;
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify(request),
      // The admin API never redirects; following one would carry the token to a URL nobody signed.
      redirect: 'error',
      signal: AbortSignal.timeout(timeoutMs),
    });
    text = await res.text();
  } catch (err) {
    const e = err as Error & { cause?: { code?: string; message?: string } };
    return fail('INSTANCE_UNAVAILABLE', printable(e.cause?.message ?? e.message));
  }
  let body: unknown = null;
  try {
    body = JSON.parse(text);
  } catch {
    // Not JSON: reported below with the raw text.
  }
  if (!res.ok) {
    const detail = body && typeof body === 'object' && 'error' in body ? String((body as { error: unknown }).error) : text;
    const code: InstanceFailureCode = res.status === 401 || res.status === 403 ? 'INSTANCE_UNAUTHORIZED'
      : res.status >= 500 ? 'INSTANCE_UNAVAILABLE' : 'INSTANCE_REFUSED';
    return fail(code, `HTTP ${res.status}: ${printable(detail) || res.statusText}`);
  }
  if (!isSummary(body)) return fail('INSTANCE_BAD_RESPONSE', `HTTP ${res.status} but not a replay summary: ${printable(text)}`);
  body.items = body.items.map((i: ReplayItem) => ({ ...i, instance: instance.name }));
  return { instance: instance.name, url, summary: body };
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
