/**
 * The DATA path: one source (the client's dot-unstuffed message from smtp-server) streamed to
 * every backend leg with accepted recipients at once, plus the journal as one more consumer.
 *
 * Backpressure: when any backend socket is full, the source is paused until every blocked leg has
 * drained, so the slowest backend paces the client and nothing accumulates in memory. A leg that
 * stalls past the data timeout (or closes) fails alone: its recipients get 451 4.4.2, the others
 * carry on. Only the header block is buffered, and only when a Message-ID may be added.
 */
import type { Readable } from 'node:stream';
import { BackendError } from '../core/errors.js';
import { withDeadline } from '../core/deadline.js';
import { isSuccess, type Reply } from '../core/replies.js';
import type { JournalEntry, JournalRecipient } from '../journal/index.js';
import { HeaderScanner } from './message-id.js';
import { hasFailed, type AcceptedRecipient, type Leg, type Transaction } from './transaction.js';
import { lmtpReply, relayBackendReply } from './reply.js';

export interface DataOptions {
  journal: JournalEntry | null;
  /** null: do not look at headers at all. "" : find the Message-ID but add none. */
  messageIdDomain: string | null;
  /** Called with each chunk as received from the client (byte counting). */
  onBytes?: (n: number) => void;
  /** Max wait for the journal's commit (a hung fdatasync): 451 for every recipient after it. */
  journalCommitMs: number;
}

export interface DataOutcome {
  /** The final reply for each recipient, by smtp-server's envelope key (AcceptedRecipient.key). */
  replies: Map<string, Reply>;
  size: number;
  messageId: string | null;
  oversized: boolean;
}

/** A stream from smtp-server: a Readable with the size flag it keeps up to date. */
export type SmtpDataStream = Readable & { sizeExceeded?: boolean };

export async function streamData(tx: Transaction, source: SmtpDataStream, opts: DataOptions): Promise<DataOutcome> {
  const result = new Map<string, Reply>();
  const settle = (r: AcceptedRecipient, reply: Reply) => result.set(r.key, reply);
  const journal = opts.journal;

  // 0. Listen for the client going away before anything else: smtp-server destroys the stream when
  //    the client hangs up mid-message, and a 'close' emitted while we await the backends' 354s
  //    would otherwise never be heard (streamData waiting forever, sessions and entry held).
  let gone: Error | null = null;
  let onGone: ((err: Error) => void) | null = null;
  const clientGone = (err: Error) => {
    if (gone) return;
    gone = err;
    onGone?.(err);
  };
  source.once('error', (err) => clientGone(err));
  source.once('close', () => { if (!source.readableEnded) clientGone(new Error('client connection closed during DATA')); });
  if (source.destroyed && !source.readableEnded) clientGone(new Error('client connection closed before DATA'));
  const goneNow = new Promise<void>((resolve) => { onGone = () => resolve(); });
  /** Nothing may be delivered: closing the legs without the final dot makes every backend discard it. */
  const abandon = (legs: Leg[], err: Error): never => {
    for (const leg of legs) tx.failLeg(leg, err);
    journal?.abort();
    throw err;
  };

  // A journal that is known to be unable to commit: deliver nothing, since the copy would have to
  // be answered 451 and every postfix retry would store another one.
  let journalDown = journal?.failed?.() === true;

  // 1. DATA on every leg with recipients, concurrently; the source waits (buffered by smtp-server,
  //    then by the client's socket) until we know who takes the message. Not when the journal is
  //    down: the legs stay before DATA and are RSET when the transaction ends.
  const candidates = journalDown ? [] : tx.allLegs.filter((l) => l.recipients.length > 0);
  const legs: Leg[] = [];
  await Promise.race([goneNow, Promise.all(candidates.map(async (leg) => {
    if (hasFailed(leg) || !leg.session) return;
    try {
      const go = await leg.session.beginData();
      if (go.code === 354) legs.push(leg);
      else for (const r of leg.recipients) settle(r, relayBackendReply(go));
      if (go.code !== 354) tx.finishLeg(leg); // the backend ended the transaction itself
    } catch (err) {
      tx.failLeg(leg, err);
    }
  }))]);
  if (gone) abandon(candidates, gone);

  const scanner = opts.messageIdDomain === null ? null : new HeaderScanner(opts.messageIdDomain || null);
  let size = 0;
  let oversized = false;
  let live = legs.slice();

  const dropLeg = (leg: Leg, err: unknown) => {
    tx.failLeg(leg, err);
    live = live.filter((l) => l !== leg);
  };

  const forward = (chunks: Buffer[]): Leg[] => {
    const blocked: Leg[] = [];
    for (const c of chunks) {
      size += c.length;
      journal?.write(c);
      for (const leg of live) {
        if (leg.session && !leg.session.writeData(c)) blocked.push(leg);
      }
    }
    return blocked;
  };

  // 2. Stream. Event-based rather than for-await: breaking out of an async iterator would
  //    destroy smtp-server's stream, and an oversized message must still be read to its end.
  let held: Buffer[] | null = null;
  await new Promise<void>((resolve, reject) => {
    let waiting = 0;
    source.on('data', (chunk: Buffer) => {
      opts.onBytes?.(chunk.length);
      if (oversized) return;
      if (source.sizeExceeded) {
        oversized = true;
        // Stop forwarding at once; closing mid-DATA (no final dot) makes each backend discard it.
        for (const leg of live) tx.failLeg(leg, new BackendError('BACKEND_LOST', leg.target.slot, 'message over size limit'));
        live = [];
        return;
      }
      // One chunk is held back so the last one and the final dot leave in one write: a loopback
      // write costs a syscall plus the receiver's wake-up, the biggest per-message cost measured.
      const out = scanner ? scanner.push(chunk) : [chunk];
      const send = held;
      held = out;
      if (!send) return;
      const blocked = forward(send);
      if (blocked.length === 0) return;
      source.pause();
      waiting++;
      const uniq = [...new Set(blocked)];
      void Promise.all(uniq.map((leg) => leg.session
        ? leg.session.waitDrain().catch((err: unknown) => dropLeg(leg, err))
        : undefined)).then(() => {
        waiting--;
        if (waiting === 0) source.resume();
      });
    });
    source.once('end', () => resolve());
    onGone = reject;
  }).catch((err: unknown) => abandon(live, err instanceof Error ? err : new Error(String(err))));

  // The last look at the journal before the dot makes the copies final.
  if (!journalDown && journal?.failed?.() === true) {
    journalDown = true;
    const err = new BackendError('BACKEND_LOST', 'journal', 'replay journal failed: message withdrawn before the final dot');
    for (const leg of live) tx.failLeg(leg, err); // closed without the dot: each backend discards it
    live = [];
  }

  if (!oversized && !journalDown) {
    const blocked = forward([...(held ?? []), ...(scanner ? scanner.end() : [])]);
    await Promise.all(blocked.map((leg) => leg.session?.waitDrain().catch((err: unknown) => dropLeg(leg, err))));
  }

  // 3. The final dot, and one reply per recipient from each leg.
  await Promise.all(live.map(async (leg) => {
    const session = leg.session;
    if (!session || hasFailed(leg)) return;
    const finals = await session.endData(leg.recipients.length);
    let anyLost = false;
    leg.recipients.forEach((r, i) => {
      const f = finals[i];
      if (f instanceof BackendError || f === undefined) anyLost = true;
      else settle(r, relayBackendReply(f));
    });
    if (anyLost) tx.failLeg(leg, finals.find((f) => f instanceof BackendError));
    else tx.finishLeg(leg);
  }));

  for (const leg of tx.allLegs) {
    for (const r of leg.recipients) {
      if (journalDown) settle(r, lmtpReply('JOURNAL_UNAVAILABLE'));
      else if (!result.has(r.key)) settle(r, lmtpReply(oversized ? 'MESSAGE_TOO_BIG' : leg.error?.code ?? 'BACKEND_LOST'));
    }
  }

  // 4. The journal: committed (durably, per its policy) before anyone hears "delivered".
  if (journal) {
    const delivered: JournalRecipient[] = [];
    for (const leg of tx.allLegs) {
      for (const r of leg.recipients) {
        const reply = result.get(r.key);
        if (!reply || !isSuccess(reply)) continue;
        delivered.push({
          address: r.address, user: r.route.user.name, store: r.route.store.name,
          slot: r.route.master.name, epoch: r.route.store.epoch, reply,
        });
      }
    }
    if (delivered.length === 0 || oversized || journalDown) {
      journal.abort();
    } else {
      try {
        await withDeadline(journal.commit(delivered, { messageId: scanner?.messageId ?? null, size }),
          opts.journalCommitMs, 'journal commit');
      } catch {
        // The backends have the mail, but we could not journal it: not yet safe to acknowledge.
        const unavailable = lmtpReply('JOURNAL_UNAVAILABLE');
        for (const key of result.keys()) result.set(key, unavailable);
      }
    }
  }
  return { replies: result, size, messageId: scanner?.messageId ?? null, oversized };
}
