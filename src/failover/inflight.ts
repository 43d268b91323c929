/**
 * The hold's question to the proxies: "can anything still land on the old master?" Each proxy in
 * the instance registry (the one `replay` fans out over, signed entries only: the admin token is
 * sent) is asked `GET /inflight?slot=OLD&user=U` until it both routes the store as failing-over
 * and has no transaction in flight to the slot (lmtp/inflight.ts says why both). All quiet: the
 * hold ends there, typically within milliseconds. Any proxy that cannot be asked, or no registry:
 * the caller falls back to the bounded wait (`failover.holdMs`), so a proxy we cannot see never
 * shortens it.
 */
import type { Redis } from 'ioredis';
import { listInstances, registryKey, type NamedInstance } from '../replay/index.js';

export interface InflightQuery {
  store: string;
  slot: string;
  /** Any user of the store: the proxy resolves it as a RCPT would, to show what it routes now. */
  user: string;
}

export type InflightVerdict = { quiet: boolean; detail: string };

/** Asks until `until` (epoch ms); never throws for a proxy's failure, says it. */
export type InflightProbe = (q: InflightQuery, until: number, signal?: AbortSignal) => Promise<InflightVerdict>;

interface Answer {
  deliveries: number;
  store: { name: string; state: string } | null;
}

const isAnswer = (v: unknown): v is Answer => typeof v === 'object' && v !== null && typeof (v as Answer).deliveries === 'number';

async function ask(instance: NamedInstance, q: InflightQuery, token: string, timeoutMs: number): Promise<Answer | string> {
  const url = new URL('inflight', instance.url.endsWith('/') ? instance.url : `${instance.url}/`);
  url.searchParams.set('slot', q.slot);
  url.searchParams.set('user', q.user);
  try {
    const res = await fetch(url, { headers: { authorization: `Bearer ${token}` }, redirect: 'error', signal: AbortSignal.timeout(timeoutMs) });
    const body: unknown = await res.json().catch(() => null);
    if (!res.ok || !isAnswer(body)) return `${instance.name}: HTTP ${res.status}${res.ok ? ' but not an in-flight answer (an older version?)' : ''}`;
    return body;
  } catch (err) {
    const e = err as Error & { cause?: { message?: string } };
    return `${instance.name}: ${e.cause?.message ?? e.message}`;
  }
}

export function proxiesInflight(o: { redis: Redis; keyPrefix: string; adminToken: string; staleAfterMs: number; pollMs: number }): InflightProbe {
  // Derived now, while preflight and the flush run: scrypt takes ~0.1 s, which would otherwise
  // be spent inside the hold, with the store's mail deferred.
  const key = registryKey(o.adminToken);
  key.catch(() => undefined); // a failure surfaces at the first probe
  return async (q, until, signal) => {
    const list = await listInstances(o.redis, o.keyPrefix, { staleAfterMs: o.staleAfterMs, key: await key });
    if (list.live.length === 0) return { quiet: false, detail: 'no proxy instance in the registry to ask' };
    // An entry we cannot verify may be a proxy we cannot ask (no admin.token there): it must not
    // shorten the hold. Stale entries are proxies gone quiet for 3 heartbeats: not counted.
    const unverified = [...list.untrusted.map((u) => u.name), ...list.invalid];
    if (unverified.length > 0) return { quiet: false, detail: `registry entries that cannot be verified: ${unverified.join(', ')}` };
    const waiting = new Map(list.live.map((i) => [i.name, i]));
    let last = '';
    for (;;) {
      const answers = await Promise.all([...waiting.values()].map(async (i) => [i, await ask(i, q, o.adminToken, Math.max(200, Math.min(2_000, until - Date.now())))] as const));
      for (const [i, a] of answers) {
        if (typeof a === 'string') return { quiet: false, detail: `could not ask ${a}` };
        if (a.store?.name === q.store && a.store.state === 'active') last = `${i.name} still routes ${q.store} as active`;
        else if (a.deliveries > 0) last = `${i.name} has ${a.deliveries} transaction(s) in flight to ${q.slot}`;
        else waiting.delete(i.name);
      }
      if (waiting.size === 0) return { quiet: true, detail: `${list.live.length} proxy instance(s): nothing in flight to ${q.slot}` };
      if (Date.now() + o.pollMs >= until || signal?.aborted) return { quiet: false, detail: last };
      await new Promise((r) => setTimeout(r, o.pollMs));
    }
  };
}
