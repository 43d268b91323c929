/** What a failover run reports as it goes (progress lines, `--json` events) and returns. */
export type PhaseName = 'preflight' | 'lease' | 'flush' | 'hold' | 'drain' | 'mark-down' | 'pre-switch' | 'switch' | 'post-switch'
  | 'release' | 'verify' | 'rollback';

export interface PhaseEvent {
  phase: PhaseName;
  status: 'start' | 'ok' | 'failed' | 'skipped';
  /** Time since the phase started (0 for `start`). */
  ms: number;
  detail: string;
}

/**
 * done: switched and verified. attention: switched, but a post-switch hook or the verify replay
 * failed (the store is marked for attention). refused: nothing was changed. aborted /
 * interrupted: rolled back, the store is active on its old master (or, interrupted after the
 * switch, active on the new one: `detail` says which). unreachable: an agent or the directory did
 * not answer (rolled back where the directory allowed).
 */
export type FailoverOutcome = 'done' | 'attention' | 'refused' | 'aborted' | 'interrupted' | 'unreachable';

export interface ReplayFound {
  selected: number;
  delivered: number;
  alreadyPresent: number;
  failed: number;
  refused: number;
}

export interface LostLag {
  slot: string;
  pendingBytes: number | null;
  oldestPendingAgeMs: number | null;
  reportAgeMs: number | null;
  users: string[];
}

export interface FailoverResult {
  outcome: FailoverOutcome;
  store: string;
  from: string | null;
  to: string | null;
  epoch: number | null;
  /** One line an operator reads at 3 a.m. */
  detail: string;
  /** Drain aborted: what the old master's agent last reported as pending. */
  pending?: { pendingBytes: number | null; users: string[]; reasons: string[] };
  replay?: ReplayFound;
  /** --crash: the replication lag the old master last reported (lost with it unless replay finds it). */
  lostLag?: LostLag;
  ms: number;
}
