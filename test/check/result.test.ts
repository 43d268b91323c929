import { describe, it, expect } from 'vitest';
import { buildResult, exitCodeOf, inFlightByAgent, inFlightByDirectory, type Difference, type UserOutcome } from '../../src/check/index.js';
import type { SlotReport } from '../../src/agent/index.js';

const T = { behindBytes: 10_240, alertBytes: 102_400, stalledAfterMs: 60_000, staleAfterMs: 15_000 };
const NOW = 1_700_000_000_000;

function report(over: Partial<SlotReport>): SlotReport {
  return {
    slot: 's11', imapdConf: '/etc/imapd.conf', channel: null, role: { store: 'A', currentMaster: true }, splitBrain: false,
    dir: '/var/lib/cyrus/sync', unattributedRecords: 0, status: 'ok', measuredAt: NOW - 1000, pendingBytes: 0, oldestPendingAgeMs: null, files: [], users: [], usersTruncated: false,
    rollingClient: { running: true, pids: [] },
    ...over,
  } as SlotReport;
}

const outcome = (user: string, verdict: UserOutcome['verdict'], over: Partial<UserOutcome> = {}): UserOutcome =>
  ({ user, store: 'A', master: 's11', replicas: ['s21'], verdict, differences: [], ...over });

describe('in flight', () => {
  it('by the directory: a moving user, a store failing over', () => {
    const user = { name: 'alice', store: 'A', state: 'active' as const };
    const store = { name: 'A', slots: ['s11', 's21'], preferredMaster: 's11', currentMaster: 's11', state: 'active' as const, epoch: 1 };
    expect(inFlightByDirectory(user, store)).toBeNull();
    expect(inFlightByDirectory({ ...user, state: 'moving', movingTo: 'B' }, store)).toBe('user is moving to store B');
    expect(inFlightByDirectory(user, { ...store, state: 'failing-over' })).toBe('store A is failing over');
  });

  it('by the agent: lagging or behind with the user queued is in flight; another user is not', () => {
    const r = report({ pendingBytes: 20_000, oldestPendingAgeMs: 500, users: ['alice'] });
    expect(inFlightByAgent('s11', r, 'alice', NOW, T).inFlight).toMatch(/^replication from s11 is behind/);
    expect(inFlightByAgent('s11', r, 'bob', NOW, T)).toEqual({ inFlight: null, note: null });
    expect(inFlightByAgent('s11', { ...r, usersTruncated: true }, 'bob', NOW, T).inFlight).not.toBeNull();
  });

  it('by the agent: stalled is a note beside the difference, never in flight; no report says nothing', () => {
    const r = report({ pendingBytes: 500, oldestPendingAgeMs: 120_000, users: ['alice'], rollingClient: { running: false, pids: [] } as SlotReport['rollingClient'] });
    expect(inFlightByAgent('s11', r, 'alice', NOW, T)).toMatchObject({ inFlight: null, note: expect.stringMatching(/stalled/) });
    expect(inFlightByAgent('s11', undefined, 'alice', NOW, T)).toEqual({ inFlight: null, note: null });
  });
});

describe('verdicts, figures and exit code', () => {
  const diff: Difference = { user: 'bob', store: 'A', masterSlot: 's11', replicaSlot: 's21', mailbox: 'user.bob', field: 'synccrcs',
    master: '1 2', replica: '3 4', side: 'both' };
  const run = (users: UserOutcome[], slotFailures: Array<{ slot: string; code: string; message: string }> = []) =>
    buildResult({ startedAt: 1000, finishedAt: 3500, mode: 'quick', scope: { all: true }, users, slotFailures, repairs: [], warnings: [] });

  it('all identical: 0, with the figures of a full run', () => {
    const r = run([outcome('alice', 'identical'), outcome('bob', 'identical')]);
    expect(r.figures).toEqual({ version: 1, startedAt: 1000, finishedAt: 3500, durationMs: 2500, mode: 'quick', full: true,
      usersTotal: 2, usersChecked: 2, usersIdentical: 2, usersDifferent: 0, usersInFlight: 0, usersUnchecked: 0, differences: 0, exitCode: 0 });
  });

  it('a difference: 1, even when other users could not be checked', () => {
    const r = run([outcome('bob', 'different', { differences: [diff] }), outcome('carol', 'unchecked', { code: 'IMAP_UNREACHABLE', reason: 'x' })]);
    expect(r.figures).toMatchObject({ usersChecked: 1, usersDifferent: 1, usersUnchecked: 1, differences: 1, exitCode: 1 });
    expect(r.differences).toEqual([diff]);
  });

  it('not checked or in flight is never identical: 75', () => {
    expect(run([outcome('a', 'identical'), outcome('b', 'unchecked', { code: 'IMAP_UNREACHABLE', reason: 'x' })]).figures.exitCode).toBe(75);
    expect(run([outcome('a', 'in-flight', { reason: 'store A is failing over' })]).figures.exitCode).toBe(75);
  });

  it('a slot refusing the admin login: 2, a configuration problem no retry fixes', () => {
    expect(exitCodeOf({ slotFailures: [{ slot: 's11', code: 'IMAP_AUTH_FAILED', message: '' }], differences: [diff], unchecked: [], inFlight: [] })).toBe(2);
  });
});
