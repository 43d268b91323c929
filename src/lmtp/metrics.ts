/**
 * The LMTP capability's metrics, registered once per server on the registry it is handed.
 * Names follow storeroute_<capability>_<thing>_<unit>.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export interface PoolStats {
  slot: string;
  idle: number;
  busy: number;
}

export interface LmtpMetrics {
  sessions: Gauge<string>;
  sessionsTotal: Counter<string>;
  /** Per recipient, after DATA: result = delivered | tempfail | permfail; class = 2xx | 4xx | 5xx. */
  deliveries: Counter<'result' | 'class'>;
  /** Per RCPT refused by us or a backend. */
  rcptRejects: Counter<'class'>;
  deliverySeconds: Histogram<string>;
  bytes: Counter<string>;
  backendConnects: Counter<'slot'>;
  backendFailures: Counter<'slot' | 'code'>;
}

export function createLmtpMetrics(registry: Registry, poolStats: () => PoolStats[]): LmtpMetrics {
  const registers = [registry];
  const poolGauge = new Gauge({
    name: 'storeroute_lmtp_backend_pool_sessions',
    help: 'Pooled backend LMTP sessions by slot and state (idle, busy)',
    labelNames: ['slot', 'state'] as const,
    registers,
    collect() {
      this.reset();
      for (const s of poolStats()) {
        this.set({ slot: s.slot, state: 'idle' }, s.idle);
        this.set({ slot: s.slot, state: 'busy' }, s.busy);
      }
    },
  });
  void poolGauge;
  return {
    sessions: new Gauge({ name: 'storeroute_lmtp_sessions', help: 'Open client LMTP sessions', registers }),
    sessionsTotal: new Counter({ name: 'storeroute_lmtp_sessions_total', help: 'Client LMTP sessions accepted', registers }),
    deliveries: new Counter({
      name: 'storeroute_lmtp_deliveries_total',
      help: 'Per-recipient final results after DATA, by result and reply class',
      labelNames: ['result', 'class'] as const,
      registers,
    }),
    rcptRejects: new Counter({
      name: 'storeroute_lmtp_rcpt_rejects_total',
      help: 'RCPT commands not accepted, by reply class',
      labelNames: ['class'] as const,
      registers,
    }),
    deliverySeconds: new Histogram({
      name: 'storeroute_lmtp_delivery_duration_seconds',
      help: 'From DATA to the final replies, per message',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    }),
    bytes: new Counter({ name: 'storeroute_lmtp_received_bytes_total', help: 'Message bytes received from clients', registers }),
    backendConnects: new Counter({
      name: 'storeroute_lmtp_backend_connects_total',
      help: 'Backend LMTP sessions opened, by slot',
      labelNames: ['slot'] as const,
      registers,
    }),
    backendFailures: new Counter({
      name: 'storeroute_lmtp_backend_failures_total',
      help: 'Backend LMTP session failures, by slot and error code',
      labelNames: ['slot', 'code'] as const,
      registers,
    }),
  };
}
