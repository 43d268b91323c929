import { describe, it, expect } from 'vitest';
import { parseReply, formatReply, replies, isPermanent } from '../../src/core/replies.js';

describe('replies', () => {
  it('parses a backend reply with its own enhanced code', () => {
    expect(parseReply(550, '5.7.1 Policy says no')).toEqual({ code: 550, enhanced: '5.7.1', text: 'Policy says no' });
  });
  it('gives a class default when the backend sent no enhanced code, or a mismatched one', () => {
    expect(parseReply(451, 'busy')).toEqual({ code: 451, enhanced: '4.0.0', text: 'busy' });
    expect(parseReply(451, '5.1.1 odd')).toEqual({ code: 451, enhanced: '4.0.0', text: '5.1.1 odd' });
  });
  it('every transient situation is a 4xx', () => {
    for (const name of ['storeFailingOver', 'storeDown', 'userMoving', 'slotNotUp', 'directoryUnavailable',
      'backendUnreachable', 'backendTimeout', 'backendLost', 'directoryBackendDisagree', 'internalError'] as const) {
      expect(isPermanent(replies[name]()), name).toBe(false);
    }
    expect(formatReply(replies.noSuchUser())).toBe('550 5.1.1 No such user here');
  });
});
