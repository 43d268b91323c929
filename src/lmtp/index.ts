/**
 * The LMTP capability's entry: the proxy server (postfix's next hop) and a one-shot backend
 * delivery that replay (src/replay/) re-delivers journal records with.
 */
export { deliverMessage, backendTimeouts } from './deliver.js';
export type { DeliverEnvelope, DeliverOptions, DeliverResult } from './deliver.js';
export type { BackendTarget, BackendTimeouts } from './backend-client.js';
export { createLmtpServer } from './server.js';
export type { LmtpServer, LmtpServerDeps } from './server.js';
export { InflightBySlot, inflightAnswer, type InflightAnswer } from './inflight.js';
export { resolveRecipient } from './route.js';
export { lmtpReply, lmtpReplyFor, LMTP_OUTCOMES, type LmtpOutcome } from './reply.js';
