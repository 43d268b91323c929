/**
 * The replication checker's entry: proves over IMAP that each store's replica holds what its
 * current master holds. Above directory/ (who is where) and agent/ (replication lag, repairs),
 * below cli/ (`storeroute check replication`):
 *
 *   run.ts       the run: scope, concurrency, rate, re-checks, verdicts     `checkReplication`
 *   user.ts      one user: quick (LIST + sync CRCs), STATUS fallback, deep
 *   compare.ts   the comparison rules, on plain data
 *   imap.ts      one Cyrus connection (admin, or admin authorising as a user)
 *   pool.ts      admin connections per slot; a failed slot is taken out once
 *   catalog.ts   a slot's mailbox names from one LIST (instead of one LIST per user)
 *   flight.ts    "in flight": directory state and agent reports; agent operations
 *   repair.ts    --repair: queue the user on the master, flush, re-check
 *   schedule.ts  rate limit and the job queue
 *   result.ts    the result, exit codes, the status document, Prometheus gauges
 */
export { checkReplication, usersInScope, type CheckOptions, type CheckProgress } from './run.js';
export {
  buildResult, exitCodeOf, registerCheckMetrics, CHECK_EXIT,
  type CheckResult, type CheckScope, type CheckStatusDoc, type RepairOutcome, type UserOutcome, type UserVerdict,
} from './result.js';
export type { CheckMode, Difference } from './user.js';
export {
  compareMailboxLists, compareMessages, compareStatus, describeMessage,
  type MailboxDifference, type MailboxEntry, type MessageSummary, type StatusFigures, type Side, type DifferenceField,
} from './compare.js';
export { CheckError, SETUP_CODES, type CheckErrorCode } from './errors.js';
export { inFlightByAgent, inFlightByDirectory, type AgentAccess, type AgentVerdict, type ReplicationReports } from './flight.js';
export { inboxName, userPatterns, belongsTo, type HierarchySeparator } from './names.js';
export { TokenBucket, JobQueue, realClock, type Clock } from './schedule.js';
export type { ImapSettings } from './imap.js';
