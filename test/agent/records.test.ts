import { describe, it, expect } from 'vitest';
import { parseRecordLine, summariseRecords, userOfMailbox } from '../../src/agent/records.js';

describe('sync log records', () => {
  it('splits atoms and quoted strings with escapes (as cyr_synclog wrote them on 3.6.1)', () => {
    expect(parseRecordLine('APPEND user.alice')).toEqual(['APPEND', 'user.alice']);
    expect(parseRecordLine('USER "we ird"')).toEqual(['USER', 'we ird']);
    expect(parseRecordLine('MAILBOX "user.a\\"b"')).toEqual(['MAILBOX', 'user.a"b']);
    expect(parseRecordLine('SEEN alice user.alice.Sent')).toEqual(['SEEN', 'alice', 'user.alice.Sent']);
    expect(parseRecordLine('USER "unterminated')).toBeNull();
  });

  it('maps internal mailbox names to users', () => {
    expect(userOfMailbox('user.alice')).toBe('alice');
    expect(userOfMailbox('user.alice.Sent.2024')).toBe('alice');
    expect(userOfMailbox('example.com!user.jo^e.Drafts')).toBe('jo.e@example.com');
    expect(userOfMailbox('DELETED.user.bob.Trash.65A1B2C3')).toBe('bob');
    expect(userOfMailbox('shared.news')).toBeNull();
    expect(userOfMailbox('user.')).toBeNull();
  });

  it('names every user of a log as the harness delivery wrote it, and counts what names none', () => {
    const log = ['MAILBOX user.alice', 'APPEND user.alice', 'MAILBOX user.alice', 'USER carol', 'SEEN dave user.dave',
      'RENAME user.bob.a user.bob.b', 'ANNOTATION ""', 'MAILBOX shared.x', ''].join('\n');
    const s = summariseRecords(log);
    expect(s.users).toEqual(['alice', 'bob', 'carol', 'dave']);
    expect(s.records).toBe(8);
    expect(s.unattributed).toBe(2);
  });

  it('drops a partial last line when the caller read only the head of a file', () => {
    expect(summariseRecords('APPEND user.alice\nAPPEND user.bo', true).users).toEqual(['alice']);
    expect(summariseRecords('APPEND user.alice\nAPPEND user.bo').users).toEqual(['alice', 'bo']);
  });
});
