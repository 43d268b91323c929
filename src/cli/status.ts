/** `storeroute status`: what an operator on call wants to see first. */
import type { Command } from 'commander';
import { isRunningBackwards, mastersPerMachine, type Directory, type DirectorySnapshot } from '../directory/index.js';
import { onDirectory, type JsonOption } from './command.js';
import { byName, slotRole } from './format.js';
import { printJson, type CliIo } from './io.js';
import { readReplication, replicationOf, seconds, splitBrainText, stateText, type ReplicationView } from './replication.js';
import { formatTable } from './table.js';

export function directoryStatus(snap: DirectorySnapshot) {
  const stores = byName(snap.stores);
  const users = Object.values(snap.users);
  return {
    version: snap.version,
    counts: { slots: Object.keys(snap.slots).length, stores: stores.length, users: users.length },
    runningBackwards: stores.filter(isRunningBackwards)
      .map((s) => ({ store: s.name, preferredMaster: s.preferredMaster, currentMaster: s.currentMaster, epoch: s.epoch })),
    storesNotActive: stores.filter((s) => s.state !== 'active').map((s) => ({ store: s.name, state: s.state })),
    slotsNotUp: byName(snap.slots).filter((s) => s.state !== 'up')
      .map((s) => ({ slot: s.name, machine: s.machine, state: s.state, ...slotRole(snap, s.name) })),
    usersMoving: users.filter((u) => u.state === 'moving').map((u) => ({ user: u.name, from: u.store, to: u.movingTo ?? null }))
      .sort((a, b) => a.user.localeCompare(b.user)),
    mastersPerMachine: Object.fromEntries([...mastersPerMachine(snap)].sort(([a], [b]) => a.localeCompare(b))),
  };
}

/** Every store's replication verdict, worst first, and the agents heard from. */
export function replicationStatus(view: ReplicationView, snap: DirectorySnapshot) {
  return {
    replication: replicationOf(view, snap),
    agents: view.agents,
    ...(view.unreadable ? { replicationUnreadable: view.unreadable } : {}),
  };
}

/** Indents every line (not the end after the last newline: the next section starts at column 0). */
function indent(text: string): string {
  return text.replace(/^(?=.)/gm, '  ');
}

function section(title: string, headers: string[], rows: (string | number | null)[][]): string {
  if (rows.length === 0) return `${title}: none\n`;
  return `${title} (${rows.length}):\n` + indent(formatTable(headers, rows));
}

function replicationSection(st: ReturnType<typeof replicationStatus>): string {
  const title = 'Replication, worst first';
  if (st.replication.length === 0) return `${title}: no stores\n`;
  const rows = st.replication.map((v) => [v.store, stateText(v.state, v.alert), v.currentMaster, v.master.pendingBytes,
    seconds(v.master.oldestPendingAgeMs), splitBrainText(v), v.master.reasons.join('; ')]);
  return `${title} (${st.replication.length}):\n` + indent(formatTable(['store', 'state', 'master', 'pending', 'lag', 'split-brain', 'why'], rows));
}

function agentsSection(st: ReturnType<typeof replicationStatus>): string {
  if (st.agents.length === 0) {
    return 'Agents: none has reported (no `storeroute agent` runs, or none can reach this directory): replication is unknown\n';
  }
  return section('Agents', ['machine', 'reported', 'stale', 'slots', 'problem'], st.agents.map((a) => [
    a.machine, a.ageMs === null ? null : `${seconds(a.ageMs)} ago`, a.stale ? 'yes' : 'no', a.slots.join(',') || null, a.problem ?? null,
  ]));
}

/** The last full `check replication` run, as it published itself to the directory status. */
interface LastCheck {
  finishedAt: number;
  differences: number;
  usersChecked: number;
  usersUnchecked: number;
  exitCode: number;
}

/** Failovers that finished switched but not clean (a post-switch hook or the verify failed): src/failover/run.ts markAttention. */
interface FailoverAttention {
  store: string;
  attention: string;
  from: string | null;
  to: string | null;
  at: number | null;
  actor: string | null;
}

async function failoverAttention(dir: Directory): Promise<FailoverAttention[]> {
  const docs = await dir.readStatus('failover').catch(() => ({})) as Record<string, Record<string, unknown> | null>;
  const out: FailoverAttention[] = [];
  for (const [store, d] of Object.entries(docs)) {
    if (!d || typeof d.attention !== 'string') continue;
    out.push({ store, attention: d.attention, from: typeof d.from === 'string' ? d.from : null, to: typeof d.to === 'string' ? d.to : null,
      at: typeof d.at === 'number' ? d.at : null, actor: typeof d.actor === 'string' ? d.actor : null });
  }
  return out.sort((a, b) => a.store.localeCompare(b.store));
}

async function lastCheck(dir: Directory): Promise<LastCheck | null> {
  const doc = (await dir.readStatus('check').catch(() => ({})) as Record<string, unknown>)['replication'] as Partial<LastCheck> | undefined;
  if (!doc || typeof doc.finishedAt !== 'number' || typeof doc.differences !== 'number') return null;
  return { finishedAt: doc.finishedAt, differences: doc.differences, usersChecked: doc.usersChecked ?? 0,
    usersUnchecked: doc.usersUnchecked ?? 0, exitCode: doc.exitCode ?? 0 };
}

/** "3d 4h", "2h 5m", "7m", "40s": an age an operator reads at a glance. */
function age(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s >= 86_400) return `${Math.floor(s / 86_400)}d ${Math.floor((s % 86_400) / 3600)}h`;
  if (s >= 3600) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return s >= 60 ? `${Math.floor(s / 60)}m` : `${s}s`;
}

function lastCheckLine(c: LastCheck | null): string {
  if (!c) return 'Last replication check: none recorded (`storeroute check replication --all`)\n';
  return `Last replication check: ${age(Date.now() - c.finishedAt)} ago, ${c.differences} difference(s), `
    + `${c.usersChecked} users checked${c.usersUnchecked > 0 ? `, ${c.usersUnchecked} not checked` : ''}\n`;
}

export function registerStatus(program: Command, io: CliIo): void {
  program.command('status').description('replication per store, stores running backwards, slots down, masters per machine')
    .option('--json', 'machine-readable output')
    .action((opts: JsonOption, cmd: Command) => onDirectory(io, cmd, async (dir, config) => {
      const snap = await dir.snapshot();
      const st = { ...directoryStatus(snap), ...replicationStatus(await readReplication(dir, config.agent), snap),
        lastReplicationCheck: await lastCheck(dir), failoversNeedingAttention: await failoverAttention(dir) };
      if (opts.json) return printJson(io, st);
      io.stdout([
        `directory version ${st.version}: ${st.counts.slots} slots, ${st.counts.stores} stores, ${st.counts.users} users\n`,
        ...(st.failoversNeedingAttention.length ? [section('Failovers needing attention', ['store', 'from', 'to', 'when', 'by', 'what'],
          st.failoversNeedingAttention.map((f) => [f.store, f.from, f.to, f.at === null ? null : `${age(Date.now() - f.at)} ago`, f.actor, f.attention]))] : []),
        replicationSection(st),
        ...(st.replicationUnreadable ? [`  (${st.replicationUnreadable})\n`] : []),
        agentsSection(st),
        lastCheckLine(st.lastReplicationCheck),
        section('Stores running backwards', ['store', 'preferred', 'current', 'epoch'],
          st.runningBackwards.map((r) => [r.store, r.preferredMaster, r.currentMaster, r.epoch])),
        section('Stores not active', ['store', 'state'], st.storesNotActive.map((r) => [r.store, r.state])),
        section('Slots not up', ['slot', 'machine', 'state', 'store', 'role'],
          st.slotsNotUp.map((r) => [r.slot, r.machine, r.state, r.store, r.role])),
        section('Users moving', ['user', 'from', 'to'], st.usersMoving.map((r) => [r.user, r.from, r.to])),
        section('Masters per machine', ['machine', 'masters'], Object.entries(st.mastersPerMachine)),
      ].join(''));
    }));
}
