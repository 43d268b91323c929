/**
 * The replay capability's entry: after a failover, re-deliver what this proxy journaled for a
 * store's old master to its new one. It sits above journal/ (the records), directory/ (where the
 * store lives now) and lmtp/ (the backend delivery), and below main.ts and cli/, which use it:
 *
 *   replay.ts     selection, the run, the outcome per recipient     `replayStore`
 *   request.ts    what a replay is asked to do (CLI flags, POST /replay JSON)
 *   presence.ts   the IMAP "already on the new master?" check
 *   ledger.ts     what earlier replays settled, next to the journal
 *   instances.ts  the instance registry in Redis and the CLI's fan-out to every instance
 *   heartbeat.ts  this instance's entry in that registry
 */
export { replayStore, type ReplayOptions, type ReplaySummary, type ReplayItem, type ReplayItemOutcome } from './replay.js';
export { replayRequestSchema, parseReplayRequest, type ReplayRequest, type ReplayRequestInput } from './request.js';
export { LEDGER_FILE } from './ledger.js';
export {
  listInstances, registryKey, replayOnInstance, sumSummaries, type InstanceFailureCode, type InstanceReplayResult, type NamedInstance,
} from './instances.js';
export { startHeartbeat, type Heartbeat, type HeartbeatOptions } from './heartbeat.js';
