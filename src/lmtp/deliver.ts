/**
 * One-shot delivery of one message to one backend, outside any client session: what replay
 * (src/replay/) uses to re-deliver a journal record. It stays here, beside the backend client it
 * is built on, so replay needs only this function from lmtp's entry, not the client's internals. Opens a session, MAIL, RCPT each recipient (pipelined when the
 * backend allows), DATA, one final reply per accepted recipient, QUIT.
 */
import { BackendError } from '../core/errors.js';
import { isSuccess, type Reply } from '../core/replies.js';
import { BackendSession, type BackendTarget, type BackendTimeouts } from './backend-client.js';
import { lmtpReplyFor } from './reply.js';
import { lmtpSection } from '../config/sections/lmtp.js';
import type { Config } from '../config/index.js';

export interface DeliverEnvelope {
  /** Envelope sender; "" for the null sender. */
  mailFrom: string;
  recipients: string[];
}

export interface DeliverOptions {
  lhloName?: string;
  timeouts?: Partial<BackendTimeouts>;
}

export interface DeliverResult {
  /** rcpt[i]: the RCPT verdict for recipients[i] (the MAIL reply for all of them if MAIL failed). */
  rcpt: Reply[];
  /** data[i]: the final reply for recipients[i]; null when its RCPT was refused. */
  data: Array<Reply | null>;
}

/** The backend timeouts a config section asks for. */
export function backendTimeouts(backend: Config['lmtp']['backend']): BackendTimeouts {
  return {
    connect: backend.connectTimeoutMs,
    greeting: backend.greetingTimeoutMs,
    command: backend.commandTimeoutMs,
    data: backend.dataTimeoutMs,
    finalReply: backend.finalReplyTimeoutMs,
  };
}

/** Defaults come from the schema (the only place they live). */
function defaultTimeouts(): BackendTimeouts {
  return backendTimeouts(lmtpSection.parse({}).backend);
}

const WRITE_SLICE = 64 * 1024;

/**
 * Delivers `body` (the message bytes exactly as they should be stored; not dot-stuffed) to
 * `target`. Throws BackendError (its reply, lmtpReplyFor: a 451) when the session fails before
 * the final dot. After the dot, a recipient whose reply never came gets that error's 451 as its
 * data[i]: uncertain stays transient.
 */
export async function deliverMessage(
  target: BackendTarget,
  envelope: DeliverEnvelope,
  body: Buffer | NodeJS.ReadableStream,
  options: DeliverOptions = {},
): Promise<DeliverResult> {
  const timeouts = { ...defaultTimeouts(), ...options.timeouts };
  const session = await BackendSession.open(target, { lhloName: options.lhloName ?? 'storeroute', timeouts });
  try {
    const mail = await session.mailFrom(envelope.mailFrom);
    if (!isSuccess(mail)) {
      return { rcpt: envelope.recipients.map(() => mail), data: envelope.recipients.map(() => null) };
    }
    // Pipelined when allowed: all RCPTs go out at once, verdicts are matched in order.
    const rcptPromises = envelope.recipients.map((r) => session.pipelining ? session.rcpt(r) : null);
    const rcpt: Reply[] = [];
    for (let i = 0; i < envelope.recipients.length; i++) {
      rcpt.push(await (rcptPromises[i] ?? session.rcpt(envelope.recipients[i] as string)));
    }
    const accepted = rcpt.filter(isSuccess).length;
    const data: Array<Reply | null> = rcpt.map(() => null);
    if (accepted === 0) return { rcpt, data };

    const go = await session.beginData();
    if (go.code !== 354) {
      rcpt.forEach((r, i) => { if (isSuccess(r)) data[i] = go; });
      return { rcpt, data };
    }
    const source = Buffer.isBuffer(body) ? null : body;
    if (source) {
      for await (const chunk of source as AsyncIterable<Buffer | string>) {
        const buf = typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : chunk;
        if (!session.writeData(buf)) await session.waitDrain();
      }
    } else {
      for (let off = 0; off < (body as Buffer).length; off += WRITE_SLICE) {
        if (!session.writeData((body as Buffer).subarray(off, off + WRITE_SLICE))) await session.waitDrain();
      }
    }
    if (session.failure) throw session.failure;
    const finals = await session.endData(accepted);
    let k = 0;
    rcpt.forEach((r, i) => {
      if (!isSuccess(r)) return;
      const f = finals[k++];
      data[i] = f instanceof BackendError ? lmtpReplyFor(f) : (f ?? null);
    });
    return { rcpt, data };
  } finally {
    void session.quit();
  }
}

