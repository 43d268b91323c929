import { describe, it, expect } from 'vitest';
import {
  belongsTo, compareMailboxLists, compareMessages, compareStatus, inboxName, userPatterns,
  type MailboxEntry, type MessageSummary,
} from '../../src/check/index.js';
import { messageIdOf } from '../../src/check/imap.js';
import { ownerOf } from '../../src/check/catalog.js';

const box = (name: string, crcs: string | null = '1 2', uniqueId: string | null = `id-${name}`): [string, MailboxEntry] =>
  [name, { name, flags: [], crcs, uniqueId }];

const msg = (uid: number, over: Partial<MessageSummary> = {}): MessageSummary =>
  ({ uid, flags: [], size: 100, internalDate: '2024-05-01T10:00:00.000Z', messageId: `<m${uid}@x>`, ...over });

describe('quick comparison (mailbox lists with sync CRCs)', () => {
  it('identical lists: no difference, every mailbox common', () => {
    const m = new Map([box('user.a'), box('user.a.Sent', '3 4')]);
    expect(compareMailboxLists(m, new Map(m))).toEqual({ differences: [], needStatus: [], differing: [], common: ['user.a', 'user.a.Sent'] });
  });

  it('a mailbox on one side only names that side', () => {
    const q = compareMailboxLists(new Map([box('user.a'), box('user.a.Projects')]), new Map([box('user.a'), box('user.a.Old')]));
    expect(q.differences).toEqual([
      { mailbox: 'user.a.Old', field: 'mailbox', master: null, replica: 'present', side: 'replica-only' },
      { mailbox: 'user.a.Projects', field: 'mailbox', master: 'present', replica: null, side: 'master-only' },
    ]);
    expect(q.common).toEqual(['user.a']);
    expect(q.differing).toEqual([]);
  });

  it('different CRCs are reported with both values; the mailbox becomes a deep target', () => {
    const q = compareMailboxLists(new Map([box('user.a', '1707109940 1414319150')]), new Map([box('user.a', '3808041392 620606733')]));
    expect(q.differences).toEqual([{ mailbox: 'user.a', field: 'synccrcs', master: '1707109940 1414319150', replica: '3808041392 620606733', side: 'both' }]);
    expect(q.differing).toEqual(['user.a']);
  });

  it('a mailbox created again under its name differs by unique id even with equal CRCs', () => {
    const q = compareMailboxLists(new Map([box('user.a', '0 12345678', 'old')]), new Map([box('user.a', '0 12345678', 'new')]));
    expect(q.differences.map((d) => d.field)).toEqual(['uniqueid']);
  });

  it('missing CRCs on either side: no verdict from them, the mailbox goes to STATUS', () => {
    const q = compareMailboxLists(new Map([box('user.a', null)]), new Map([box('user.a', '1 2')]));
    expect(q).toMatchObject({ differences: [], needStatus: ['user.a'], differing: [] });
  });

  it('STATUS fallback reports each differing figure', () => {
    const base = { uidvalidity: '7', uidnext: '4', messages: '3', highestmodseq: '9' };
    expect(compareStatus('user.a', base, base)).toEqual([]);
    expect(compareStatus('user.a', base, { ...base, uidnext: '5', messages: '4' })).toEqual([
      { mailbox: 'user.a', field: 'uidnext', master: '4', replica: '5', side: 'both' },
      { mailbox: 'user.a', field: 'messages', master: '3', replica: '4', side: 'both' },
    ]);
  });
});

describe('deep comparison (messages by UID)', () => {
  const mb = (messages: MessageSummary[], uidValidity = '1') => ({ uidValidity, messages });

  it('identical messages: nothing', () => {
    expect(compareMessages('user.a', mb([msg(1), msg(2)]), mb([msg(1), msg(2)]))).toEqual([]);
  });

  it('a message only on the replica is extra there, named by Message-ID', () => {
    const d = compareMessages('user.a', mb([msg(1)]), mb([msg(1), msg(2, { messageId: '<replica-only@x>', size: 512 })]));
    expect(d).toEqual([{ mailbox: 'user.a', field: 'message', uid: 2, messageId: '<replica-only@x>', master: null,
      replica: '<replica-only@x> 512 B 2024-05-01T10:00:00.000Z', side: 'replica-only' }]);
  });

  it('a message only on the master is missing on the replica', () => {
    expect(compareMessages('user.a', mb([msg(1), msg(2)]), mb([msg(1)]))).toMatchObject([{ field: 'message', uid: 2, side: 'master-only', replica: null }]);
  });

  it('flags, size, date and Message-ID of one UID are compared field by field', () => {
    const d = compareMessages('user.a', mb([msg(1, { flags: ['\\Flagged', '\\Seen'] })]),
      mb([msg(1, { flags: ['\\Seen'], size: 99, internalDate: '2024-05-01T10:00:01.000Z' })]));
    expect(d.map((x) => [x.field, x.master, x.replica])).toEqual([
      ['size', '100', '99'], ['internaldate', '2024-05-01T10:00:00.000Z', '2024-05-01T10:00:01.000Z'], ['flags', '\\Flagged \\Seen', '\\Seen'],
    ]);
    expect(d.every((x) => x.uid === 1 && x.messageId === '<m1@x>' && x.side === 'both')).toBe(true);
  });

  it('different UIDVALIDITY: only that, since the UIDs name different messages', () => {
    expect(compareMessages('user.a', mb([msg(1)], '5'), mb([msg(2)], '6'))).toEqual([
      { mailbox: 'user.a', field: 'uidvalidity', master: '5', replica: '6', side: 'both' },
    ]);
  });
});

describe('Cyrus mailbox names of a user (admin view)', () => {
  it('standard separator: dots in the user name are stored as ^', () => {
    expect(inboxName('alice', '.')).toBe('user.alice');
    expect(userPatterns('john.doe', '.')).toEqual(['user.john^doe', 'user.john^doe.*']);
  });

  it('unix separator keeps dots; virtual domains put the domain last', () => {
    expect(userPatterns('john.doe', '/')).toEqual(['user/john.doe', 'user/john.doe/*']);
    expect(userPatterns('alice@example.com', '.')).toEqual(['user.alice@example.com', 'user.alice.*@example.com']);
  });

  it('belongsTo rejects a neighbour whose name starts the same', () => {
    expect(belongsTo('user.alice.Sent', 'alice', '.')).toBe(true);
    expect(belongsTo('user.alice', 'alice', '.')).toBe(true);
    expect(belongsTo('user.alice2', 'alice', '.')).toBe(false);
    expect(belongsTo('user.alice.Sent@example.com', 'alice@example.com', '.')).toBe(true);
    expect(belongsTo('user.alice.Sent@example.org', 'alice@example.com', '.')).toBe(false);
  });

  it('the catalog files each listed name under its owner, and nothing else', () => {
    expect(ownerOf('user.alice', '.')).toBe('alice');
    expect(ownerOf('user.alice.Sent.2024', '.')).toBe('alice');
    expect(ownerOf('user.john^doe.Sent', '.')).toBe('john.doe');
    expect(ownerOf('user/john.doe/Sent', '/')).toBe('john.doe');
    expect(ownerOf('user.alice.Sent@Example.com', '.')).toBe('alice@example.com');
    expect(ownerOf('shared.folder', '.')).toBeNull();
    expect(ownerOf('user.', '.')).toBeNull();
  });

  it('Message-ID from a HEADER.FIELDS section, folded or not', () => {
    expect(messageIdOf('Message-ID: <a@b>\r\n\r\n')).toBe('<a@b>');
    expect(messageIdOf('message-id:\r\n <folded@b>\r\n\r\n')).toBe('<folded@b>');
    expect(messageIdOf('\r\n')).toBeNull();
  });
});
