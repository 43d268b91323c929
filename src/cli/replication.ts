/**
 * Replication for the command line: the reading and judging of the agents' reports is the
 * agent's (agent/view.ts), shared with the failover runner; here only how it reads on a terminal.
 */
import type { StoreVerdict } from '../agent/index.js';

export {
  readReplication, replicationOf, slotSync, storeReplication,
  type AgentSeen, type ReplicationView, type ReportedSlot, type SlotSync, type StoreReplication,
} from '../agent/index.js';

// ---- human output

export function seconds(ms: number | null): string | null {
  return ms === null ? null : `${Math.round(ms / 1000)}s`;
}

export function stateText(state: string, alert: boolean): string {
  return alert ? `${state} (alert)` : state;
}

export function splitBrainText(v: StoreVerdict): string | null {
  if (v.splitBrain.length === 0) return null;
  return v.splitBrain.map((w) => `${w.slot}: ${w.users.join(',') || '?'}${w.usersTruncated ? ',…' : ''}`).join('; ');
}
