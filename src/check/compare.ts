/**
 * The comparison itself: plain data in (what each side answered), differences out. No I/O, so
 * every rule is tested on plain data (test/check/compare.test.ts).
 *
 * Quick: a mailbox on one side only, or a mailbox whose sync CRCs differ. Cyrus keeps two CRCs per
 * mailbox ("basic annot"), the ones sync_client itself compares: a message delivered to the replica
 * alone, a flag set on one side, an annotation changed, all change them. The unique id is compared
 * too (a mailbox deleted and created again under its name keeps the name, not the id). Where a side
 * has no CRCs (an older Cyrus, or the entry unreadable) STATUS figures stand in for them.
 * Deep: the messages, by UID (replication keeps UIDs), with Message-ID, size, internal date, flags.
 */

export interface MailboxEntry {
  /** The admin's name, e.g. `user.alice.Sent`. */
  name: string;
  flags: string[];
  /** `"<basic> <annot>"`, or null when the server did not give the annotation. */
  crcs: string | null;
  uniqueId: string | null;
}

export interface StatusFigures {
  uidvalidity: string | null;
  uidnext: string | null;
  messages: string | null;
  highestmodseq: string | null;
}

export interface MessageSummary {
  uid: number;
  /** Sorted, without \Recent (per session, never replicated). */
  flags: string[];
  size: number | null;
  /** ISO-8601 instant (each server prints its own time zone). */
  internalDate: string | null;
  messageId: string | null;
}

/** Which side has it: the thing is only on the master, only on the replica, or on both but different. */
export type Side = 'master-only' | 'replica-only' | 'both';

export type DifferenceField =
  | 'mailbox' | 'synccrcs' | 'uniqueid'
  | 'uidvalidity' | 'uidnext' | 'messages' | 'highestmodseq'
  | 'message' | 'flags' | 'size' | 'internaldate' | 'message-id';

export interface MailboxDifference {
  mailbox: string;
  field: DifferenceField;
  /** The master's value; null when the master does not have the mailbox/message. */
  master: string | null;
  replica: string | null;
  side: Side;
  uid?: number;
  /** For message-level differences: the message's Message-ID (from whichever side has it). */
  messageId?: string | null;
}

export interface QuickComparison {
  differences: MailboxDifference[];
  /** On both sides, but one side gave no CRCs: compare them by STATUS. */
  needStatus: string[];
  /** On both sides and found different: what `--deep` looks into. */
  differing: string[];
  /** On both sides (what `--deep=all` looks into). */
  common: string[];
}

function byName(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function compareMailboxLists(master: ReadonlyMap<string, MailboxEntry>, replica: ReadonlyMap<string, MailboxEntry>): QuickComparison {
  const out: QuickComparison = { differences: [], needStatus: [], differing: [], common: [] };
  const names = [...new Set([...master.keys(), ...replica.keys()])].sort(byName);
  for (const name of names) {
    const m = master.get(name);
    const r = replica.get(name);
    if (!m || !r) {
      out.differences.push({ mailbox: name, field: 'mailbox', master: m ? 'present' : null, replica: r ? 'present' : null,
        side: m ? 'master-only' : 'replica-only' });
      continue;
    }
    out.common.push(name);
    let differs = false;
    if (m.uniqueId !== null && r.uniqueId !== null && m.uniqueId !== r.uniqueId) {
      out.differences.push({ mailbox: name, field: 'uniqueid', master: m.uniqueId, replica: r.uniqueId, side: 'both' });
      differs = true;
    }
    if (m.crcs === null || r.crcs === null) out.needStatus.push(name);
    else if (m.crcs !== r.crcs) {
      out.differences.push({ mailbox: name, field: 'synccrcs', master: m.crcs, replica: r.crcs, side: 'both' });
      differs = true;
    }
    if (differs) out.differing.push(name);
  }
  return out;
}

const STATUS_FIELDS = ['uidvalidity', 'uidnext', 'messages', 'highestmodseq'] as const;

/** STATUS figures of one mailbox on both sides (the fallback when the CRCs are missing). */
export function compareStatus(mailbox: string, master: StatusFigures, replica: StatusFigures): MailboxDifference[] {
  return STATUS_FIELDS.filter((f) => master[f] !== replica[f])
    .map((f) => ({ mailbox, field: f, master: master[f], replica: replica[f], side: 'both' as const }));
}

/** One line for a message that only one side has: enough to find it with any mail tool. */
export function describeMessage(m: MessageSummary): string {
  return [m.messageId ?? '(no Message-ID)', m.size === null ? null : `${m.size} B`, m.internalDate].filter(Boolean).join(' ');
}

export interface MailboxMessages {
  uidValidity: string | null;
  messages: MessageSummary[];
}

/**
 * The messages of one mailbox on both sides, by UID. With different UIDVALIDITY the UIDs name
 * different messages, so only that is reported: comparing them would list every message twice.
 */
export function compareMessages(mailbox: string, master: MailboxMessages, replica: MailboxMessages): MailboxDifference[] {
  if (master.uidValidity !== replica.uidValidity) {
    return [{ mailbox, field: 'uidvalidity', master: master.uidValidity, replica: replica.uidValidity, side: 'both' }];
  }
  const out: MailboxDifference[] = [];
  const onReplica = new Map(replica.messages.map((m) => [m.uid, m]));
  const seen = new Set<number>();
  for (const m of master.messages) {
    seen.add(m.uid);
    const r = onReplica.get(m.uid);
    if (!r) {
      out.push({ mailbox, field: 'message', uid: m.uid, messageId: m.messageId, master: describeMessage(m), replica: null, side: 'master-only' });
      continue;
    }
    const pairs: Array<[DifferenceField, string | null, string | null]> = [
      ['message-id', m.messageId, r.messageId],
      ['size', m.size === null ? null : String(m.size), r.size === null ? null : String(r.size)],
      ['internaldate', m.internalDate, r.internalDate],
      ['flags', m.flags.join(' '), r.flags.join(' ')],
    ];
    for (const [field, a, b] of pairs) {
      if (a !== b) out.push({ mailbox, field, uid: m.uid, messageId: m.messageId ?? r.messageId, master: a, replica: b, side: 'both' });
    }
  }
  for (const r of replica.messages) {
    if (!seen.has(r.uid)) {
      out.push({ mailbox, field: 'message', uid: r.uid, messageId: r.messageId, master: null, replica: describeMessage(r), side: 'replica-only' });
    }
  }
  return out.sort((a, b) => (a.uid ?? 0) - (b.uid ?? 0));
}
