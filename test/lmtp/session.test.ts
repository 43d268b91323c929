/**
 * The client session's state machine (src/lmtp/session.ts): which event may happen in which state,
 * that an impossible one is refused by name and changes nothing, and that a transaction is
 * released exactly once whichever way it ends.
 */
import { describe, expect, it, vi } from 'vitest';
import { ClientSession, nextState, type SessionEvent, type SessionState } from '../../src/lmtp/session.js';
import { Transaction } from '../../src/lmtp/transaction.js';
import type { BackendPool } from '../../src/lmtp/pool.js';

const STATES: SessionState[] = ['idle', 'mail', 'rcpt', 'data', 'closed'];
const EVENTS: SessionEvent[] = ['MAIL', 'RSET', 'RCPT', 'RCPT_ACCEPTED', 'DATA', 'REPLIED', 'CLOSE'];

function transaction(): Transaction {
  return new Transaction({ address: 's@x.org', args: {} }, {
    pool: {} as BackendPool, directory: { resolve: async () => null },
    rules: { recipientDelimiter: '+', localDomains: [] }, acquireMs: 100,
  });
}

/** A session driven to `state` through allowed events only, with the refusals it reported. */
function sessionIn(state: SessionState) {
  const refusals: Array<[SessionEvent, SessionState]> = [];
  const s = new ClientSession('c1', (client, event) => refusals.push([event, client.state]));
  const path: Record<SessionState, SessionEvent[]> = {
    idle: [], mail: ['MAIL'], rcpt: ['MAIL', 'RCPT_ACCEPTED'], data: ['MAIL', 'RCPT_ACCEPTED', 'DATA'], closed: ['CLOSE'],
  };
  const tx = transaction();
  for (const e of path[state]) expect(e === 'MAIL' ? s.transition('MAIL', tx) : s.transition(e)).toBe(true);
  expect(s.state).toBe(state);
  return { s, tx, refusals };
}

describe('LMTP client session state machine', () => {
  it('allows exactly these transitions', () => {
    const table: Record<string, string> = {};
    for (const e of EVENTS) for (const st of STATES) table[`${e} in ${st}`] = nextState(st, e) ?? 'refused';
    expect(table).toEqual({
      'MAIL in idle': 'mail', 'MAIL in mail': 'refused', 'MAIL in rcpt': 'refused', 'MAIL in data': 'refused', 'MAIL in closed': 'refused',
      'RSET in idle': 'idle', 'RSET in mail': 'idle', 'RSET in rcpt': 'idle', 'RSET in data': 'refused', 'RSET in closed': 'refused',
      'RCPT in idle': 'refused', 'RCPT in mail': 'mail', 'RCPT in rcpt': 'rcpt', 'RCPT in data': 'refused', 'RCPT in closed': 'refused',
      'RCPT_ACCEPTED in idle': 'refused', 'RCPT_ACCEPTED in mail': 'rcpt', 'RCPT_ACCEPTED in rcpt': 'rcpt',
      'RCPT_ACCEPTED in data': 'refused', 'RCPT_ACCEPTED in closed': 'closed',
      'DATA in idle': 'refused', 'DATA in mail': 'refused', 'DATA in rcpt': 'data', 'DATA in data': 'refused', 'DATA in closed': 'refused',
      'REPLIED in idle': 'refused', 'REPLIED in mail': 'refused', 'REPLIED in rcpt': 'refused', 'REPLIED in data': 'idle',
      'REPLIED in closed': 'closed',
      'CLOSE in idle': 'closed', 'CLOSE in mail': 'closed', 'CLOSE in rcpt': 'closed', 'CLOSE in data': 'closed', 'CLOSE in closed': 'refused',
    });
  });

  it('refuses an impossible transition by name, changing nothing', () => {
    for (const st of STATES) {
      for (const e of EVENTS) {
        if (nextState(st, e) !== undefined) continue;
        const { s, tx, refusals } = sessionIn(st);
        const release = vi.spyOn(tx, 'release');
        const before = s.tx;
        expect(e === 'MAIL' ? s.transition('MAIL', transaction()) : s.transition(e), `${e} in ${st}`).toBe(false);
        expect(refusals).toEqual([[e, st]]);
        expect(s.state).toBe(st);
        expect(s.tx).toBe(before);
        expect(release).not.toHaveBeenCalled();
      }
    }
  });

  it('holds a transaction exactly in mail, rcpt and data', () => {
    for (const st of STATES) {
      const { s, tx } = sessionIn(st);
      const holds = st === 'mail' || st === 'rcpt' || st === 'data';
      expect(s.tx, st).toBe(holds ? tx : null);
      expect(s.inTransaction, st).toBe(holds);
    }
  });

  it('fixes the recipients at DATA and releases the transaction once when it is replied to', () => {
    const { s, tx } = sessionIn('rcpt');
    const startData = vi.spyOn(tx, 'startData');
    const release = vi.spyOn(tx, 'release');
    expect(s.transition('DATA')).toBe(true);
    expect(startData).toHaveBeenCalledTimes(1);
    expect(release).not.toHaveBeenCalled();
    expect(s.transition('REPLIED')).toBe(true);
    expect(release).toHaveBeenCalledTimes(1);
    expect(s.state).toBe('idle');
  });

  it('releases a transaction the client reset (seen at its next MAIL), then opens the new one', () => {
    const { s, tx } = sessionIn('rcpt');
    const release = vi.spyOn(tx, 'release');
    const next = transaction();
    expect(s.transition('RSET')).toBe(true);
    expect(s.transition('MAIL', next)).toBe(true);
    expect(release).toHaveBeenCalledTimes(1);
    expect(s.tx).toBe(next);
  });

  it('a client gone during DATA: released at CLOSE, and the late final replies release nothing more', () => {
    const { s, tx, refusals } = sessionIn('data');
    const release = vi.spyOn(tx, 'release');
    expect(s.transition('CLOSE')).toBe(true);
    expect(release).toHaveBeenCalledTimes(1);
    expect(s.transition('REPLIED')).toBe(true);
    expect(s.transition('RCPT_ACCEPTED')).toBe(true);
    expect(release).toHaveBeenCalledTimes(1);
    expect(s.state).toBe('closed');
    expect(refusals).toEqual([]);
  });
});
