/**
 * What an agent publishes every round: the integration stores it in the directory backend as
 * status (separate from the audited layout), and `status`, `store show` and the failover runner
 * classify it with state.ts. Plain JSON: epoch milliseconds, no Maps, no Dates.
 */
import type { SyncDirReading } from './sync-log.js';

export const REPORT_VERSION = 1;

/** What one repair or operation did, for the audit history (the integration writes it). */
export interface RepairRecord {
  /** `replay-orphan-file` | `start-rolling-client` | an operation name (`flush`, `sync-user` …). */
  kind: string;
  slot: string;
  /** ok: done. failed: ran and failed. timeout: killed at its deadline. skipped: refused before running. */
  result: 'ok' | 'failed' | 'timeout' | 'skipped';
  startedAt: number;
  durationMs: number;
  /** The argv that ran (never a shell string), one per command. */
  commands: string[][];
  /** Files handled (for orphan replays). */
  files?: string[];
  detail: string;
}

export interface SlotReport extends SyncDirReading {
  slot: string;
  imapdConf: string;
  /** The replication channel (null: the default one, `{configdirectory}/sync/log`). */
  channel: string | null;
  /** A configuration fact that makes an empty log meaningless (sync_log off, channel not logged). */
  problem?: { code: string; message: string };
  /** The slot's role as this agent last learnt it from the directory (null: not known). */
  role: { store: string | null; currentMaster: boolean | null };
  /** Pending records on a slot that is not its store's current master: something still writes there. */
  splitBrain: boolean;
  lastRepair?: RepairRecord;
}

export interface AgentReport {
  version: typeof REPORT_VERSION;
  machine: string;
  agentPid: number;
  /**
   * The agent's HTTP endpoint as it listens (`http://host:port`): where `storeroute` asks it for
   * operations (flush, synclog-user …) with the token. Null only before it listens.
   */
  url: string | null;
  startedAt: number;
  /** The measuring interval: a reader can tell how stale "stale" is. */
  intervalMs: number;
  measuredAt: number;
  slots: SlotReport[];
}
