/**
 * A real operation/repair context over a made-up slot: the agent config goes through the real
 * schema, the slot through loadLocalSlots, readings through readSyncDir and the /proc scan.
 */
import { parseConfig } from '../../src/config/index.js';
import type { AgentConfig } from '../../src/config/sections/agent.js';
import { loadLocalSlots, SlotLocks, type AgentLayout, type LocalSlot } from '../../src/agent/slots.js';
import { readSyncDir } from '../../src/agent/sync-log.js';
import { scanSyncClients } from '../../src/agent/procs.js';
import type { OpContext } from '../../src/agent/ops.js';
import type { SlotReport } from '../../src/agent/report.js';
import { testLogger } from '../helpers/logger.js';
import type { TmpSlot } from './helpers.js';

export const MASTER_LAYOUT: AgentLayout = {
  slots: { s1: { machine: 'm1', ip: '127.0.0.11' }, s2: { machine: 'm2', ip: '127.0.0.12' }, x9: { machine: 'm9', ip: '127.0.0.19' } },
  stores: { A: { slots: ['s1', 's2'], currentMaster: 's1', state: 'active' } },
};

export const REPLICA_LAYOUT: AgentLayout = { ...MASTER_LAYOUT, stores: { A: { slots: ['s1', 's2'], currentMaster: 's2', state: 'active' } } };

export function agentConfig(slot: TmpSlot, agent: Record<string, unknown> = {}): AgentConfig {
  return parseConfig({ agent: { machine: 'm1', slots: [{ name: 's1', imapdConf: slot.conf }], ...agent } }).agent;
}

export async function readReport(slot: LocalSlot, layoutRole: { store: string | null; currentMaster: boolean | null }): Promise<SlotReport> {
  const reading = await readSyncDir({
    dir: slot.syncDir, configDirectory: slot.conf.configDirectory, conf: slot.confReal, channel: slot.channel,
    procs: await scanSyncClients(), userScanBytes: 65_536,
  });
  return { ...reading, slot: slot.name, imapdConf: slot.imapdConf, channel: slot.channel, role: layoutRole, splitBrain: false };
}

export async function opContext(config: AgentConfig, layout: AgentLayout | null): Promise<OpContext & { slot: LocalSlot }> {
  const slots = await loadLocalSlots(config);
  const slot = slots[0] as LocalSlot;
  return {
    config, logger: testLogger(), locks: new SlotLocks(), slots: new Map(slots.map((s) => [s.name, s])),
    layout: async () => layout,
    readSlot: (s) => readReport(s, { store: 'A', currentMaster: true }),
    slot,
  };
}
