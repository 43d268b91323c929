/**
 * "In flight": a user whose mail is legitimately not the same on both sides right now. The
 * directory says so (store failing over, user moving), or the master's slot agent does (the master
 * has records for the user that the replica has not received yet). Such a user is re-checked after
 * a short wait and, if still in flight, reported as such and never as a difference.
 *
 * Agent reports come from wherever the caller reads them (the CLI: the directory status the agents
 * publish to). `--repair`'s operations go to the agents' HTTP ports (requestAgentOp), whose URLs the
 * caller gives: the directory keeps no agent addresses.
 */
import { classifySlot, requestAgentOp, type SlotReport, type Thresholds } from '../agent/index.js';
import type { Store, User } from '../directory/index.js';
import { CheckError } from './errors.js';

/** Where the agents' last reports are read, and how to judge them. */
export interface ReplicationReports {
  /** Slot name → its newest report (a report that cannot be used is simply absent). */
  read(): Promise<ReadonlyMap<string, SlotReport>>;
  /** The thresholds for one report (the staleness limit depends on its agent's interval). */
  thresholds(report: SlotReport): Thresholds;
}

/** The agents' HTTP ports, for --repair. */
export interface AgentAccess {
  /** machine name → the agent's base URL. */
  urls: ReadonlyMap<string, string>;
  token: string;
  timeoutMs: number;
}

/** The directory's reason, or null. */
export function inFlightByDirectory(user: User, store: Store | null): string | null {
  if (user.state === 'moving') return `user is moving to store ${user.movingTo ?? '?'}`;
  if (store?.state === 'failing-over') return `store ${store.name} is failing over`;
  return null;
}

export interface AgentVerdict {
  /** Set when the replica may legitimately lag behind for this user. */
  inFlight: string | null;
  /** Worth printing beside a difference (replication stalled, no report). */
  note: string | null;
}

/**
 * The agent's reason, from the master slot's report. Lagging or behind with the user among the
 * pending records (or the list cut short) is in flight; stalled is not (nothing will fix it by
 * itself: the difference is real until someone acts), but it is said beside the difference.
 */
export function inFlightByAgent(slot: string, report: SlotReport | undefined, user: string, now: number, t: Thresholds): AgentVerdict {
  const v = classifySlot(slot, report, now, t);
  const pending = report !== undefined && (report.users.includes(user) || report.usersTruncated);
  if ((v.state === 'lagging' || v.state === 'behind') && pending) {
    return { inFlight: `replication from ${slot} is ${v.state} (${v.reasons.join('; ')}) with this user queued`, note: null };
  }
  if (v.state === 'stalled') return { inFlight: null, note: `replication from ${slot} is stalled: ${v.reasons.join('; ')}` };
  return { inFlight: null, note: null };
}

/** Reports read at most once per `maxAgeMs` (every differing user of a slot asks). */
export class AgentSignals {
  readonly #reports: ReplicationReports | null;
  readonly #access: AgentAccess | null;
  readonly #maxAgeMs: number;
  #cache: { at: number; reports: Promise<ReadonlyMap<string, SlotReport>> } | null = null;
  readonly warnings = new Set<string>();

  constructor(reports: ReplicationReports | null, access: AgentAccess | null, maxAgeMs: number) {
    this.#reports = reports;
    this.#access = access;
    this.#maxAgeMs = maxAgeMs;
  }

  async verdict(slot: string, user: string, now = Date.now()): Promise<AgentVerdict> {
    if (!this.#reports) return { inFlight: null, note: null };
    if (!this.#cache || now - this.#cache.at > this.#maxAgeMs) this.#cache = { at: now, reports: this.#reports.read() };
    try {
      const report = (await this.#cache.reports).get(slot);
      return report ? inFlightByAgent(slot, report, user, now, this.#reports.thresholds(report)) : { inFlight: null, note: null };
    } catch (err) {
      this.warnings.add(`the agents' reports could not be read (${(err as Error).message}): in-flight users are told by the directory alone`);
      return { inFlight: null, note: null };
    }
  }

  /** Queues `user` in the master slot's sync log (`cyr_synclog -u`). */
  async queueUser(machine: string, slot: string, user: string): Promise<void> {
    const access = this.#need(machine);
    await requestAgentOp({ url: access.url, token: access.token, timeoutMs: access.timeoutMs }, 'synclog-user', { slot, user });
  }

  /** Waits (on the agent) until the slot's sync log is empty: what was queued has reached the replica. */
  async flush(machine: string, slot: string, deadlineMs: number): Promise<void> {
    const access = this.#need(machine);
    await requestAgentOp({ url: access.url, token: access.token, timeoutMs: deadlineMs + 5_000 }, 'flush', { slot, deadlineMs });
  }

  #need(machine: string): { url: string; token: string; timeoutMs: number } {
    const url = this.#access?.urls.get(machine);
    if (!this.#access || !url) {
      throw new CheckError('CHECK_NOT_CONFIGURED', `no agent URL for machine ${machine} (add --agent ${machine}=http://…)`, { machine });
    }
    return { url, token: this.#access.token, timeoutMs: this.#access.timeoutMs };
  }
}
