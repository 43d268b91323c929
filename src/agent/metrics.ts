/** The agent's Prometheus metrics, registered on the registry the composition root passes in. */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { RepairRecord, SlotReport } from './report.js';

export interface AgentMetrics {
  observe(report: SlotReport): void;
  repair(record: RepairRecord): void;
  op(op: string, result: string): void;
}

export function createAgentMetrics(registry: Registry): AgentMetrics {
  const registers = [registry];
  const pending = new Gauge({ name: 'storeroute_agent_sync_pending_bytes', help: 'Bytes of sync log (log and log-*) not yet replicated', labelNames: ['slot'], registers });
  const oldest = new Gauge({ name: 'storeroute_agent_sync_oldest_pending_seconds', help: 'Age of the oldest pending sync log record (0: none)', labelNames: ['slot'], registers });
  const running = new Gauge({ name: 'storeroute_agent_sync_client_running', help: 'A rolling sync_client -r runs for the slot (1) or not (0)', labelNames: ['slot'], registers });
  const readable = new Gauge({ name: 'storeroute_agent_sync_dir_readable', help: 'The slot\'s sync directory could be read (1) or its state is unknown (0)', labelNames: ['slot'], registers });
  const splitBrain = new Gauge({ name: 'storeroute_agent_split_brain_pending_bytes', help: 'Pending sync log on a slot that is not its store\'s current master (something still writes there)', labelNames: ['slot'], registers });
  const repairs = new Counter({ name: 'storeroute_agent_repairs_total', help: 'Repairs run, by kind and result', labelNames: ['kind', 'result'], registers });
  const ops = new Counter({ name: 'storeroute_agent_ops_total', help: 'Slot operations requested, by operation and result', labelNames: ['op', 'result'], registers });
  return {
    observe(r) {
      const slot = r.slot;
      readable.set({ slot }, r.status === 'error' ? 0 : 1);
      pending.set({ slot }, r.pendingBytes);
      oldest.set({ slot }, (r.oldestPendingAgeMs ?? 0) / 1000);
      running.set({ slot }, r.rollingClient.running ? 1 : 0);
      splitBrain.set({ slot }, r.splitBrain ? r.pendingBytes : 0);
    },
    repair(record) {
      repairs.inc({ kind: record.kind, result: record.result });
    },
    op(op, result) {
      ops.inc({ op, result });
    },
  };
}
