/**
 * What a check run answers: per-user verdicts, the differences, the users it could not check, and
 * the figures of the run (for the directory status and Prometheus). Plain JSON throughout (epoch
 * milliseconds, no Maps), so `--json` prints it as is and the status store keeps it as is.
 */
import { Gauge, type Registry } from 'prom-client';
import type { CheckMode, Difference } from './user.js';

export interface CheckScope {
  all?: boolean;
  stores?: string[];
  users?: string[];
}

export type UserVerdict = 'identical' | 'different' | 'in-flight' | 'unchecked';

export interface UserOutcome {
  user: string;
  store: string;
  master: string | null;
  replicas: string[];
  verdict: UserVerdict;
  differences: Difference[];
  /** in-flight: why; unchecked: what failed. */
  reason?: string;
  /** unchecked: the CheckError code. */
  code?: string;
  /** unchecked: the slot that failed, when one did. */
  slot?: string;
  /** Said beside a difference (e.g. replication from the master is stalled). */
  note?: string;
}

export interface RepairOutcome {
  user: string;
  slot: string;
  queued: boolean;
  error?: { code: string; message: string };
  /** The flush after queueing failed: the re-check shows where things stand. */
  flush?: { code: string; message: string };
}

/** The run's figures; also the document for the directory status (`publishStatus('check', 'replication', doc)`). */
export interface CheckStatusDoc {
  version: 1;
  /** Epoch ms. */
  startedAt: number;
  finishedAt: number;
  durationMs: number;
  mode: CheckMode;
  /** True for `--all`: only such a run says anything about the whole cluster. */
  full: boolean;
  usersTotal: number;
  /** Compared to the end: identical + different. */
  usersChecked: number;
  usersIdentical: number;
  usersDifferent: number;
  usersInFlight: number;
  usersUnchecked: number;
  /** Difference lines (a user may have several). */
  differences: number;
  exitCode: number;
}

export interface CheckResult {
  scope: CheckScope;
  figures: CheckStatusDoc;
  differences: Difference[];
  inFlight: Array<{ user: string; store: string; reason: string }>;
  unchecked: Array<{ user: string; store: string; code: string; reason: string; slot?: string }>;
  /** Users found different, with their notes (one entry per user). */
  differentUsers: Array<{ user: string; store: string; master: string | null; replicas: string[]; note?: string }>;
  /** Slots taken out of the run (login refused, unreachable): each said once. */
  slotFailures: Array<{ slot: string; code: string; message: string }>;
  repairs: RepairOutcome[];
  warnings: string[];
}

export const CHECK_EXIT = { identical: 0, different: 1, config: 2, tempfail: 75 } as const;

/**
 * The exit code. A refused admin login is a configuration problem that no retry fixes: 2, first.
 * Then differences (1: found, whatever else happened), then anything not compared to the end (75:
 * unreachable, in flight; run again later). 0 only when every user in scope was found identical.
 */
export function exitCodeOf(r: Pick<CheckResult, 'slotFailures' | 'differences' | 'unchecked' | 'inFlight'> & { different?: number }): number {
  if (r.slotFailures.some((f) => f.code === 'IMAP_AUTH_FAILED')) return CHECK_EXIT.config;
  if (r.differences.length > 0 || (r.different ?? 0) > 0) return CHECK_EXIT.different;
  if (r.unchecked.length > 0 || r.inFlight.length > 0) return CHECK_EXIT.tempfail;
  return CHECK_EXIT.identical;
}

export function buildResult(run: {
  startedAt: number; finishedAt: number; mode: CheckMode; scope: CheckScope; users: Array<UserOutcome | undefined>;
  slotFailures: CheckResult['slotFailures']; repairs: RepairOutcome[]; warnings: string[];
}): CheckResult {
  const users = run.users.filter((u): u is UserOutcome => u !== undefined);
  const count = (v: string) => users.filter((u) => u.verdict === v).length;
  const different = users.filter((u) => u.verdict === 'different');
  const result: Omit<CheckResult, 'figures'> = {
    scope: run.scope,
    differences: different.flatMap((u) => u.differences),
    inFlight: users.filter((u) => u.verdict === 'in-flight').map((u) => ({ user: u.user, store: u.store, reason: u.reason ?? '' })),
    unchecked: users.filter((u) => u.verdict === 'unchecked')
      .map((u) => ({ user: u.user, store: u.store, code: u.code ?? 'IMAP_UNREACHABLE', reason: u.reason ?? '', ...(u.slot ? { slot: u.slot } : {}) })),
    differentUsers: different.map((u) => ({ user: u.user, store: u.store, master: u.master, replicas: u.replicas, ...(u.note ? { note: u.note } : {}) })),
    slotFailures: run.slotFailures,
    repairs: run.repairs,
    warnings: run.warnings,
  };
  const figures: CheckStatusDoc = {
    version: 1,
    startedAt: run.startedAt,
    finishedAt: run.finishedAt,
    durationMs: run.finishedAt - run.startedAt,
    mode: run.mode,
    full: run.scope.all === true,
    usersTotal: users.length,
    usersChecked: count('identical') + count('different'),
    usersIdentical: count('identical'),
    usersDifferent: different.length,
    usersInFlight: count('in-flight'),
    usersUnchecked: count('unchecked'),
    differences: result.differences.length,
    exitCode: exitCodeOf({ ...result, different: different.length }),
  };
  return { ...result, figures };
}

/**
 * Gauges of the last full run, read from `last()` at scrape time (e.g. the document kept in the
 * directory status), for the admin port's /metrics. Nothing is exported before a first full run.
 */
export function registerCheckMetrics(registry: Registry, last: () => CheckStatusDoc | null | Promise<CheckStatusDoc | null>): void {
  const gauge = (name: string, help: string, value: (d: CheckStatusDoc) => number) => new Gauge({
    name, help, registers: [registry],
    async collect() {
      const d = await last();
      if (d) this.set(value(d));
      else this.reset();
    },
  });
  gauge('storeroute_check_last_full_run_start_timestamp_seconds', 'Start of the last full replication check (Unix time)', (d) => d.startedAt / 1000);
  gauge('storeroute_check_last_full_run_duration_seconds', 'Duration of the last full replication check', (d) => d.durationMs / 1000);
  gauge('storeroute_check_last_full_run_users_checked', 'Users compared to the end by the last full replication check', (d) => d.usersChecked);
  gauge('storeroute_check_last_full_run_users_different', 'Users found different by the last full replication check', (d) => d.usersDifferent);
  gauge('storeroute_check_last_full_run_differences', 'Difference lines found by the last full replication check', (d) => d.differences);
  gauge('storeroute_check_last_full_run_users_unchecked', 'Users the last full replication check could not compare', (d) => d.usersUnchecked + d.usersInFlight);
}
