/**
 * Replay after a failover: whatever this proxy delivered to a store's old master in the
 * replication lag exists nowhere else. Select the journal records with recipients on the store
 * that went to a slot other than its current master, check the new master over IMAP for each
 * Message-ID, and re-deliver the rest over LMTP; record every outcome in the ledger so a second
 * run does not deliver twice.
 *
 * Outcomes per (record, recipient): delivered (2xx), refused (5xx, permanent), failed (4xx, no
 * answer, IMAP check impossible: worth retrying), alreadyPresent (found over IMAP),
 * alreadyReplayed (the ledger says a previous replay settled it), wouldDeliver (dry run).
 */
import { hostname } from 'node:os';
import type { Config } from '../config/index.js';
import type { Observability } from '../core/deps.js';
import { DirectoryNotFoundError, StorerouteError } from '../core/errors.js';
import { formatReply, isPermanent, isSuccess, type Reply } from '../core/replies.js';
import type { DirectoryReader, Slot } from '../directory/index.js';
import {
  journalUnavailable, lockJournalDir, REPLAY_LOCK_FILE, type JournalReader, type JournalRecipient, type JournalRecord, type JournalSession,
} from '../journal/index.js';
import { deliverMessage, lmtpReplyFor, type DeliverOptions } from '../lmtp/index.js';
import { ReplayLedger, type LedgerEntry } from './ledger.js';
import { PresenceChecker } from './presence.js';
import { parseReplayRequest } from './request.js';

export type ReplayItemOutcome = 'delivered' | 'alreadyPresent' | 'refused' | 'failed' | 'alreadyReplayed' | 'wouldDeliver';

export interface ReplayItem {
  recordId: string;
  receivedAt: string;
  address: string;
  user: string;
  messageId: string | null;
  fromSlot: string;
  toSlot: string;
  outcome: ReplayItemOutcome;
  /** The backend's reply line, or why it failed. */
  detail?: string;
  /** Set by the CLI's fan-out: which proxy instance's journal it came from. */
  instance?: string;
}

export interface ReplaySummary {
  store: string;
  master: string;
  selected: number;
  alreadyPresent: number;
  delivered: number;
  refused: number;
  failed: number;
  skippedAlreadyReplayed: number;
  /** Dry run: what would have been delivered. */
  wouldDeliver: number;
  dryRun: boolean;
  items: ReplayItem[];
}

/**
 * The request fields (store … actor) may come straight from JSON (the admin API's POST /replay):
 * they are validated at run time by parseReplayRequest, so `store` is typed optional here but a
 * replay without it is refused with a ConfigError naming the field.
 */
export interface ReplayOptions {
  /** The journal to read (an open Journal or a read-only reader); its ledger lives in its dir. */
  journal: JournalReader;
  directory: Pick<DirectoryReader, 'getStore' | 'getSlot'>;
  store?: string;
  since?: Date | string | number;
  until?: Date | string | number;
  user?: string;
  all?: boolean;
  dryRun?: boolean;
  /** Default true. */
  check?: boolean;
  again?: boolean;
  actor?: string;
  /** config.replay: IMAP admin credentials and concurrency. */
  imap: Config['replay'];
  /** Recipients' records re-delivered at once (default imap.concurrency). */
  concurrency?: number;
  obs: Observability;
  lmtp?: DeliverOptions;
  onProgress?: (done: number, total: number, item: ReplayItem) => void;
}

interface Work {
  record: JournalRecord;
  recipients: JournalRecipient[];
}

/** Validates the request part of `options` (it may come straight from JSON) and runs the replay. */
export async function replayStore(options: ReplayOptions): Promise<ReplaySummary> {
  const req = parseReplayRequest({
    store: options.store, since: options.since, until: options.until, user: options.user, all: options.all,
    dryRun: options.dryRun, check: options.check, again: options.again, actor: options.actor,
  });
  const log = options.obs.logger.child({ component: 'replay', store: req.store });
  const store = await options.directory.getStore(req.store);
  if (!store) throw new DirectoryNotFoundError('store', req.store);
  const slot = await options.directory.getSlot(store.currentMaster);
  if (!slot) throw new DirectoryNotFoundError('slot', store.currentMaster);
  const master: Slot = slot;

  // One session for the whole replay: the segments it selected from stay open until it is done, so
  // a seal (rename) or a retention delete meanwhile cannot take a body away from under it.
  const session = options.journal.session();
  try {
    return await selectAndRun(session);
  } finally {
    await session.close();
  }

  async function selectAndRun(session: JournalSession): Promise<ReplaySummary> {
    const work: Work[] = [];
    for await (const record of session.read({ store: req.store, user: req.user, since: req.since, until: req.until })) {
      const seen = new Set<string>();
      const recipients = record.recipients.filter((r) => {
        if (r.store !== req.store || (req.user && r.user !== req.user)) return false;
        if (!req.all && r.slot === master.name) return false;
        const key = r.address.toLowerCase();
        if (seen.has(key)) return false;
        seen.add(key);
        return true;
      });
      if (recipients.length > 0) work.push({ record, recipients });
    }
    const total = work.reduce((n, w) => n + w.recipients.length, 0);
    const summary: ReplaySummary = { store: req.store, master: master.name, selected: total, alreadyPresent: 0, delivered: 0,
      refused: 0, failed: 0, skippedAlreadyReplayed: 0, wouldDeliver: 0, dryRun: req.dryRun, items: [] };
    log.info({ master: master.name, records: work.length, recipients: total, dryRun: req.dryRun, actor: req.actor }, 'replay_started');
    if (total === 0) return summary;

    // One replay at a time per journal: two concurrent runs would both miss the other's ledger lines.
    let unlock: (() => Promise<void>) | null = null;
    if (!req.dryRun) {
      try {
        unlock = await lockJournalDir(options.journal.dir, REPLAY_LOCK_FILE);
      } catch (err) {
        throw journalUnavailable(`another replay is running on this journal: ${(err as Error).message}`, err);
      }
    }
    try {
      return await runReplay();
    } finally {
      await unlock?.();
    }

    async function runReplay(): Promise<ReplaySummary> {
      const ledger = await ReplayLedger.load(options.journal.dir);
      const presence = req.check ? new PresenceChecker({ host: master.ip, port: master.imap }, options.imap.imap, log) : null;
      const target = { host: master.ip, port: master.lmtp, slot: master.name };
      const lmtpOptions: DeliverOptions = { lhloName: hostname(), ...options.lmtp };

      const finish = (item: ReplayItem) => {
        summary.items.push(item);
        const key = item.outcome === 'alreadyReplayed' ? 'skippedAlreadyReplayed' : item.outcome;
        summary[key] += 1;
        options.onProgress?.(summary.items.length, total, item);
      };

      async function replayRecord({ record, recipients }: Work): Promise<void> {
        const base = (r: JournalRecipient): ReplayItem => ({ recordId: record.id, receivedAt: record.receivedAt.toISOString(),
          address: r.address, user: r.user, messageId: record.messageId, fromSlot: r.slot, toSlot: master.name, outcome: 'failed' });
        const toDeliver: JournalRecipient[] = [];
        const ledgerEntries: LedgerEntry[] = [];
        const note = (item: ReplayItem) => {
          if (!req.dryRun && item.outcome !== 'alreadyReplayed' && item.outcome !== 'wouldDeliver') {
            ledgerEntries.push({ at: new Date().toISOString(), actor: req.actor, store: req.store, recordId: record.id,
              address: item.address, toSlot: item.toSlot, outcome: item.outcome, ...(item.detail ? { detail: item.detail } : {}) });
          }
          finish(item);
        };
        for (const r of recipients) {
          const earlier = req.again ? undefined : ledger.settled(record.id, r.address);
          if (earlier) {
            note({ ...base(r), outcome: 'alreadyReplayed', detail: `${earlier.outcome} at ${earlier.at} by ${earlier.actor}` });
            continue;
          }
          if (presence && record.messageId) {
            try {
              if (await presence.has(r.user, record.messageId)) {
                note({ ...base(r), outcome: 'alreadyPresent' });
                continue;
              }
            } catch (err) {
              // Cannot tell: delivering could duplicate, skipping could lose. Report it; the operator decides (--no-check).
              note({ ...base(r), outcome: 'failed', detail: `IMAP check failed: ${(err as Error).message}` });
              continue;
            }
          }
          toDeliver.push(r);
        }
        if (toDeliver.length > 0 && req.dryRun) {
          for (const r of toDeliver) note({ ...base(r), outcome: 'wouldDeliver' });
        } else if (toDeliver.length > 0) {
          const replies = await deliverOnce(record, toDeliver);
          toDeliver.forEach((r, i) => {
            const reply = replies[i]!;
            const outcome = reply instanceof Error ? 'failed' : isSuccess(reply) ? 'delivered' : isPermanent(reply) ? 'refused' : 'failed';
            note({ ...base(r), outcome, detail: reply instanceof Error ? reply.message : formatReply(reply) });
          });
        }
        try {
          await ledger.append(ledgerEntries);
        } catch (err) {
          log.error({ err, file: ledger.file }, 'replay_ledger_write_failed');
        }
      }

      /** One LMTP transaction for the record's recipients; a per-recipient reply (or the error) each. */
      async function deliverOnce(record: JournalRecord, recipients: JournalRecipient[]): Promise<Array<Reply | Error>> {
        try {
          // Opened before the LMTP transaction starts: a body that is gone fails the record, not a delivery half-sent.
          const body = await session.openBody(record);
          const res = await deliverMessage(target, { mailFrom: record.mailFrom, recipients: recipients.map((r) => r.address) },
            body, lmtpOptions);
          return recipients.map((_, i) => {
            const rcpt = res.rcpt[i]!;
            return isSuccess(rcpt) ? (res.data[i] ?? new Error('no final reply')) : rcpt;
          });
        } catch (err) {
          // The detail an operator reads names the reply postfix would have had for the same failure.
          const e = err instanceof StorerouteError ? new Error(`${err.message} (${formatReply(lmtpReplyFor(err))})`) : (err as Error);
          return recipients.map(() => e);
        }
      }

      try {
        let next = 0;
        const lanes = Math.max(1, options.concurrency ?? options.imap.concurrency);
        await Promise.all(Array.from({ length: Math.min(lanes, work.length) }, async () => {
          while (next < work.length) await replayRecord(work[next++]!);
        }));
      } finally {
        await presence?.close();
      }
      const { items: _items, ...counts } = summary;
      log.info(counts, 'replay_finished');
      return summary;
    }
  }
}
