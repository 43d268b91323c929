import { describe, it, expect } from 'vitest';
import { classifySlot, classifyStore, bySeverity, type Thresholds } from '../../src/agent/state.js';
import type { SlotReport } from '../../src/agent/report.js';
import type { PendingFile } from '../../src/agent/sync-log.js';

const NOW = 1_800_000_000_000;
const T: Thresholds = { behindBytes: 10 * 1024, alertBytes: 100 * 1024, stalledAfterMs: 60_000, staleAfterMs: 15_000 };

function file(name: string, bytes: number, extra: Partial<PendingFile> = {}): PendingFile {
  return { name, kind: name === 'log' ? 'log' : 'log-run', bytes, firstRecordAt: NOW - 1_000, lastRecordAt: NOW, workedBy: [], orphan: false, ...extra };
}

function report(slot: string, extra: Partial<SlotReport> = {}): SlotReport {
  const files = extra.files ?? [];
  const pendingBytes = files.reduce((n, f) => n + f.bytes, 0);
  return {
    slot, imapdConf: `/etc/${slot}.conf`, channel: null, dir: `/var/${slot}/sync`, status: 'ok',
    pendingBytes, oldestPendingAgeMs: pendingBytes ? 1_000 : null, files, rollingClient: { running: true, pids: [42] },
    users: [], usersTruncated: false, unattributedRecords: 0, measuredAt: NOW - 1_000,
    role: { store: 'A', currentMaster: true }, splitBrain: false, ...extra,
  };
}

describe('classifySlot', () => {
  it('nothing pending: caught-up', () => {
    expect(classifySlot('s1', report('s1'), NOW, T)).toMatchObject({ state: 'caught-up', alert: false, reasons: [] });
    expect(classifySlot('s1', report('s1', { status: 'no-sync-dir' }), NOW, T).state).toBe('caught-up');
  });

  it('pending under the behind threshold with a rolling client: lagging; over it: behind; over alert: alert', () => {
    expect(classifySlot('s1', report('s1', { files: [file('log', 500)] }), NOW, T).state).toBe('lagging');
    expect(classifySlot('s1', report('s1', { files: [file('log', 10 * 1024 + 1)] }), NOW, T)).toMatchObject({ state: 'behind', alert: false });
    expect(classifySlot('s1', report('s1', { files: [file('log', 100 * 1024 + 1)] }), NOW, T)).toMatchObject({ state: 'behind', alert: true });
  });

  it('pending and nothing making progress: stalled, saying why', () => {
    const noClient = classifySlot('s1', report('s1', { files: [file('log', 10)], rollingClient: { running: false, pids: [] } }), NOW, T);
    expect(noClient).toMatchObject({ state: 'stalled', reasons: ['no rolling sync_client is running'] });
    const orphan = classifySlot('s1', report('s1', { files: [file('log-123', 10, { orphan: true })] }), NOW, T);
    expect(orphan.state).toBe('stalled');
    expect(orphan.reasons[0]).toMatch(/log-123/);
    const old = classifySlot('s1', report('s1', { files: [file('log-run', 10)], oldestPendingAgeMs: 61_000 }), NOW, T);
    expect(old).toMatchObject({ state: 'stalled', reasons: ['oldest pending record is 61 s old'] });
  });

  it('stale, missing or unreadable reports are unknown, never caught-up', () => {
    expect(classifySlot('s1', undefined, NOW, T).state).toBe('unknown');
    expect(classifySlot('s1', report('s1', { measuredAt: NOW - 16_000 }), NOW, T)).toMatchObject({ state: 'unknown', reasons: ['last report is 16 s old (limit 15 s)'] });
    expect(classifySlot('s1', report('s1', { status: 'error', error: { code: 'UNREADABLE', message: 'cannot list' } }), NOW, T).reasons).toEqual(['cannot list']);
    expect(classifySlot('s1', report('s1', { problem: { code: 'SYNC_LOG_NOT_WRITTEN', message: 'sync_log is off' } }), NOW, T).state).toBe('unknown');
  });
});

describe('classifyStore', () => {
  const layout = { store: 'A', currentMaster: 's11', slots: ['s11', 's21'] };

  it('takes the master\'s state; a quiet replica is no warning', () => {
    const v = classifyStore(layout, new Map([['s11', report('s11')], ['s21', report('s21', { role: { store: 'A', currentMaster: false } })]]), NOW, T);
    expect(v).toMatchObject({ store: 'A', state: 'caught-up', splitBrain: [] });
  });

  it('pending records on the non-master: split-brain warning naming the slot and users', () => {
    const replica = report('s21', { files: [file('log', 40)], users: ['alice', 'bob'], role: { store: 'A', currentMaster: false } });
    const v = classifyStore(layout, new Map([['s11', report('s11')], ['s21', replica]]), NOW, T);
    expect(v.state).toBe('caught-up');
    expect(v.splitBrain).toEqual([{ slot: 's21', pendingBytes: 40, users: ['alice', 'bob'], usersTruncated: false }]);
  });

  it('lists the worst first', () => {
    const stores = [
      classifyStore({ store: 'ok', currentMaster: 'a', slots: ['a'] }, new Map([['a', report('a')]]), NOW, T),
      classifyStore({ store: 'gone', currentMaster: 'b', slots: ['b'] }, new Map(), NOW, T),
      classifyStore({ store: 'slow', currentMaster: 'c', slots: ['c'] }, new Map([['c', report('c', { files: [file('log', 20_000)] })]]), NOW, T),
    ];
    expect(stores.sort(bySeverity).map((s) => `${s.store}:${s.state}`)).toEqual(['gone:unknown', 'slow:behind', 'ok:caught-up']);
  });
});
