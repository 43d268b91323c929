/**
 * `status` and `store show` judge replication from the agents' reports as published through the
 * directory's status interface (publishStatus('agent', machine, report): what `storeroute agent`
 * does every round). Crafted reports stand in for the agents; everything else is real: the
 * directory (embedded file, real redis-server) and the CLI in-process.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPORT_VERSION, type AgentReport, type SlotReport } from '../../src/agent/index.js';
import { loadConfig } from '../../src/config/index.js';
import { createDirectory } from '../../src/directory/index.js';
import { cli, embeddedSite, fixture, redisSite } from './harness.js';
import { startRedis, uniquePrefix, type RedisServer } from '../helpers/redis.js';
import { testLogger, testRegistry } from '../helpers/logger.js';

function slotReport(slot: string, measuredAt: number, o: Partial<SlotReport> = {}): SlotReport {
  return {
    dir: `/var/lib/cyrus/${slot}/sync`, status: 'ok', pendingBytes: 0, oldestPendingAgeMs: null, files: [],
    rollingClient: { running: true, pids: [4242] }, users: [], usersTruncated: false, unattributedRecords: 0, measuredAt,
    slot, imapdConf: `/etc/cyrus/${slot}.conf`, channel: null, role: { store: null, currentMaster: null }, splitBrain: false, ...o,
  };
}

function agentReport(machine: string, measuredAt: number, slots: SlotReport[], intervalMs = 5_000): AgentReport {
  return { version: REPORT_VERSION, machine, agentPid: 4242, url: 'http://127.0.0.1:9027', startedAt: measuredAt - 600_000, intervalMs,
    measuredAt, slots };
}

interface StoreRow {
  store: string;
  state: string;
  currentMaster: string;
  alert: boolean;
  master: { pendingBytes: number | null; oldestPendingAgeMs: number | null; reasons: string[] };
  splitBrain: Array<{ slot: string; pendingBytes: number; users: string[] }>;
}

type Site = { config: string; publish: (machine: string, doc: unknown) => Promise<void> };

/** A directory with the two-stores layout, and a way to publish status into it as an agent would. */
async function site(kind: 'embedded' | 'redis', redis?: RedisServer): Promise<Site> {
  const s = kind === 'embedded' ? embeddedSite() : redisSite((redis as RedisServer).url, uniquePrefix('repl'));
  const applied = await cli(['--config', s.config, 'directory', 'apply', fixture('two-stores.yaml')]);
  expect(applied.code).toBe(0);
  return {
    config: s.config,
    async publish(machine, doc) {
      const dir = await createDirectory(loadConfig(s.config).directory, { logger: testLogger(), metrics: testRegistry() });
      try {
        await dir.publishStatus('agent', machine, doc);
      } finally {
        await dir.close();
      }
    },
  };
}

async function statusJson(s: Site): Promise<{ replication: StoreRow[]; agents: Array<Record<string, unknown>> }> {
  const r = await cli(['--config', s.config, 'status', '--json']);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout);
}

/** imap1 says store1's master is caught up and slot102 (a replica of store2) has records; imap2 says store2's master is behind. */
async function publishBusyDay(s: Site, now = Date.now()): Promise<void> {
  await s.publish('imap1', agentReport('imap1', now, [
    slotReport('slot101', now),
    slotReport('slot102', now, { pendingBytes: 120, oldestPendingAgeMs: 2_000, users: ['carol'], rollingClient: { running: false, pids: [] } }),
  ]));
  await s.publish('imap2', agentReport('imap2', now, [
    slotReport('slot202', now, { pendingBytes: 20_000, oldestPendingAgeMs: 4_000, users: ['carol'] }),
    slotReport('slot201', now),
  ]));
}

let redis: RedisServer;
beforeAll(async () => { redis = await startRedis(); });
afterAll(async () => { await redis?.close(); });

for (const kind of ['embedded', 'redis'] as const) {
  describe(`replication in status (${kind})`, () => {
    it('with no agent ever reporting, every store is unknown, and the column says so', async () => {
      const s = await site(kind, redis);
      const st = await statusJson(s);
      expect(st.agents).toEqual([]);
      expect(st.replication.map((v) => [v.store, v.state, v.master.reasons])).toEqual([
        ['store1', 'unknown', ['no report from an agent for this slot']],
        ['store2', 'unknown', ['no report from an agent for this slot']],
      ]);
      const text = (await cli(['--config', s.config, 'status'])).stdout;
      expect(text).toContain('Replication, worst first (2):\n'
        + '  STORE   STATE    MASTER   PENDING  LAG  SPLIT-BRAIN  WHY\n'
        + '  store1  unknown  slot101  -        -    -            no report from an agent for this slot\n'
        + '  store2  unknown  slot202  -        -    -            no report from an agent for this slot\n'
        + 'Agents: none has reported');
    });

    it('shows caught-up and behind from published reports, worst first, with the split-brain slot and its users', async () => {
      const s = await site(kind, redis);
      await publishBusyDay(s);
      const st = await statusJson(s);
      expect(st.replication.map((v) => [v.store, v.state])).toEqual([['store2', 'behind'], ['store1', 'caught-up']]);
      const [store2, store1] = st.replication as [StoreRow, StoreRow];
      expect(store2).toMatchObject({ currentMaster: 'slot202', alert: false, master: { pendingBytes: 20_000, oldestPendingAgeMs: 4_000 },
        splitBrain: [{ slot: 'slot102', pendingBytes: 120, users: ['carol'] }] });
      expect(store1).toMatchObject({ currentMaster: 'slot101', master: { pendingBytes: 0, reasons: [] }, splitBrain: [] });
      expect(st.agents.map((a) => [a.machine, a.stale, a.slots])).toEqual([['imap1', false, ['slot101', 'slot102']], ['imap2', false, ['slot202', 'slot201']]]);

      const text = (await cli(['--config', s.config, 'status'])).stdout;
      expect(text).toMatch(/\n {2}store2 +behind +slot202 +20000 +4s +slot102: carol +20000 bytes pending \(behind above 10240\)\n {2}store1 +caught-up +slot101 +0 +- +- +-\n/);
    });
  });
}

describe('replication in status: staleness, bad reports, store show (embedded)', () => {
  it('a report older than staleAfterIntervals × intervalMs is unknown, never caught up', async () => {
    const s = await site('embedded');
    const now = Date.now();
    await s.publish('imap1', agentReport('imap1', now - 60_000, [slotReport('slot101', now - 60_000)]));
    let st = await statusJson(s);
    const store1 = st.replication.find((v) => v.store === 'store1');
    expect(store1?.state).toBe('unknown');
    expect(store1?.master.reasons[0]).toMatch(/^last report is 6\d s old \(limit 15 s\)$/);
    expect(st.agents).toEqual([expect.objectContaining({ machine: 'imap1', stale: true })]);

    // An agent that says it measures every 30 s is judged by its own interval: 3 × 30 s.
    await s.publish('imap1', agentReport('imap1', now - 60_000, [slotReport('slot101', now - 60_000)], 30_000));
    st = await statusJson(s);
    expect(st.replication.find((v) => v.store === 'store1')?.state).toBe('caught-up');
  });

  it('a report it cannot read makes its slots unknown, and says why', async () => {
    const s = await site('embedded');
    const now = Date.now();
    await s.publish('imap1', { version: 99, slots: [] });
    await s.publish('imap2', agentReport('imap2', now, [slotReport('slot202', now, { pendingBytes: 'lots' as unknown as number })]));
    const st = await statusJson(s);
    expect(st.replication.map((v) => v.state)).toEqual(['unknown', 'unknown']);
    expect(st.agents).toEqual([
      expect.objectContaining({ machine: 'imap1', problem: 'report version 99 is not understood (expected 1)' }),
      expect.objectContaining({ machine: 'imap2', problem: '1 malformed slot report(s) left out', slots: [] }),
    ]);
  });

  it('store show gives every slot\'s sync state: the master\'s, a replica with records (split-brain), a replica no agent reports', async () => {
    const s = await site('embedded');
    await publishBusyDay(s);
    const shown = await cli(['--config', s.config, 'store', 'show', 'store2', '--json']);
    expect(shown.code).toBe(0);
    const { replication } = JSON.parse(shown.stdout);
    expect(replication).toMatchObject({ store: 'store2', state: 'behind', currentMaster: 'slot202' });
    expect(replication.slots.map((r: Record<string, unknown>) => [r.slot, r.role, r.machine, r.sync, r.pendingBytes])).toEqual([
      ['slot202', 'master', 'imap2', 'behind', 20_000],
      ['slot102', 'replica', 'imap1', 'split-brain', 120],
      ['slot301', 'replica', 'imap3', 'unknown', null],
    ]);
    const text = (await cli(['--config', s.config, 'store', 'show', 'store2'])).stdout;
    expect(text).toContain('replication:       behind\nsplit-brain:       slot102: carol\n');
    expect(text).toMatch(/\nslot102 +replica +imap1 +split-brain +120 +2s +none +\d+s ago +carol +120 bytes pending on a slot that is not the current master: something still writes here\n/);
    expect(text).toMatch(/\nslot301 +replica +imap3 +unknown +- +- +- +- +- +no report from an agent for this slot\n$/);
  });
});
