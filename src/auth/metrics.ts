/**
 * auth_http metrics, counted in plain numbers on the request path and handed to prom-client only
 * when the registry is read. Why: even pre-bound prom-client children hash their label object on
 * every inc()/observe() (and observe() builds a closure per call); with a new connection per
 * login that was a measurable share of a request's CPU (perf: ~3% of the server's samples).
 * The exposition is unchanged: same names, labels, buckets and types.
 */
import { Counter, Gauge } from 'prom-client';
import type { Registry } from 'prom-client';
import type { AuthResult } from './response.js';

const RESULTS: readonly AuthResult[] = ['ok', 'invalid', 'throttled', 'wait', 'temporary', 'unsupported', 'refused', 'bad_request', 'forbidden'];
const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5] as const;
const DURATION = 'storeroute_auth_request_duration_seconds';
const DURATION_HELP = 'Time from request headers to answer, by result';

interface Timing { buckets: Float64Array; sum: number; count: number }

export type RecordAuth = (protocol: string, result: AuthResult, seconds: number) => void;

export function authMetrics(metrics: Registry, heldLogins: () => number): RecordAuth {
  /** protocol → result → count; protocols are the few parseProtocol() allows plus 'unknown'. */
  const counts = new Map<string, Map<AuthResult, number>>();
  const timings = new Map<AuthResult, Timing>(RESULTS.map((r) => [r, { buckets: new Float64Array(BUCKETS.length), sum: 0, count: 0 }]));

  new Counter({
    name: 'storeroute_auth_requests_total',
    help: 'auth_http requests answered, by Auth-Protocol and result',
    labelNames: ['protocol', 'result'] as const,
    registers: [metrics],
    collect() {
      this.reset();
      for (const [protocol, byResult] of counts) for (const [result, n] of byResult) this.labels(protocol, result).inc(n);
    },
  });
  metrics.registerMetric({
    name: DURATION,
    help: DURATION_HELP,
    type: 'histogram',
    aggregator: 'sum',
    get() {
      // The shape prom-client's own Histogram.get() returns: cumulative buckets, then sum and count.
      const values: { labels: Record<string, string | number>; value: number; metricName: string }[] = [];
      for (const [result, t] of timings) {
        if (t.count === 0) continue;
        let cumulative = 0;
        BUCKETS.forEach((le, i) => {
          cumulative += t.buckets[i]!;
          values.push({ labels: { le, result }, value: cumulative, metricName: `${DURATION}_bucket` });
        });
        values.push({ labels: { le: '+Inf', result }, value: t.count, metricName: `${DURATION}_bucket` });
        values.push({ labels: { result }, value: t.sum, metricName: `${DURATION}_sum` });
        values.push({ labels: { result }, value: t.count, metricName: `${DURATION}_count` });
      }
      return Promise.resolve({ name: DURATION, help: DURATION_HELP, type: 'histogram', values, aggregator: 'sum' });
    },
    reset() {
      for (const t of timings.values()) { t.buckets.fill(0); t.sum = 0; t.count = 0; }
    },
  } as unknown as Parameters<Registry['registerMetric']>[0]);
  new Gauge({
    name: 'storeroute_auth_held_logins',
    help: 'Logins currently being held with Auth-Status WAIT (per user and client address)',
    registers: [metrics],
    collect() { this.set(heldLogins()); },
  });

  return (protocol, result, seconds) => {
    let byResult = counts.get(protocol);
    if (!byResult) { byResult = new Map(); counts.set(protocol, byResult); }
    byResult.set(result, (byResult.get(result) ?? 0) + 1);
    const t = timings.get(result)!;
    t.sum += seconds;
    t.count++;
    let i = 0;
    while (i < BUCKETS.length && seconds > BUCKETS[i]!) i++;
    if (i < BUCKETS.length) t.buckets[i]!++;
  };
}
