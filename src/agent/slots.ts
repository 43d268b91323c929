/**
 * The agent's local slots (resolved once at start from their imapd.conf) and their roles (learnt
 * every round from the directory through the integration's `layout` callback).
 */
import { realpath } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { AgentConfig } from '../config/sections/agent.js';
import { AgentError } from './errors.js';
import { readImapdConf, syncDirFor, channelProblem, type ImapdConf } from './imapd-conf.js';

export interface LocalSlot {
  name: string;
  /** imapd.conf as configured (what command templates get as {conf}). */
  imapdConf: string;
  /** Its realpath: what a running sync_client's -C must resolve to. */
  confReal: string;
  conf: ImapdConf;
  channel: string | null;
  syncDir: string;
  /** Set when the slot's log can never show a backlog (sync_log off, channel not logged). */
  problem?: { code: string; message: string };
}

/**
 * The part of the directory the agent needs. Structurally a subset of the directory snapshot, so
 * the integration can pass `() => directory.snapshot()` as is.
 */
export interface AgentLayout {
  slots: Record<string, { machine: string; ip: string; state?: string }>;
  stores: Record<string, { slots: string[]; currentMaster: string; state?: string }>;
}

export interface SlotRole {
  store: string | null;
  /** null: not known (no layout yet, or the slot is in no store). */
  currentMaster: boolean | null;
  /** Address of the slot this one replicates to when it is the master of a two-slot store. */
  peer: string | null;
  storeState: string | null;
  slotState: string | null;
}

/** Reads every slot's imapd.conf; any problem stops the agent, naming the slot. */
export async function loadLocalSlots(config: AgentConfig): Promise<LocalSlot[]> {
  const out: LocalSlot[] = [];
  for (const s of config.slots) {
    let conf: ImapdConf;
    try {
      conf = await readImapdConf(s.imapdConf);
    } catch (err) {
      if (err instanceof AgentError) {
        throw new AgentError(err.code, `slot ${s.name}: ${err.message}`, { ...err.facts, slot: s.name }, { cause: err });
      }
      throw err;
    }
    const channel = s.channel ?? null;
    const problemText = channelProblem(conf, channel);
    out.push({
      name: s.name,
      imapdConf: s.imapdConf,
      confReal: await realpath(resolve(s.imapdConf)),
      conf,
      channel,
      syncDir: syncDirFor(conf, channel),
      ...(problemText ? { problem: { code: 'SYNC_LOG_NOT_WRITTEN', message: problemText } } : {}),
    });
  }
  return out;
}

/** Refuses to start with a slot the directory does not know or places on another machine. */
export function checkPlacement(layout: AgentLayout, machine: string, slots: readonly LocalSlot[]): void {
  for (const s of slots) {
    const entry = layout.slots[s.name];
    if (!entry) {
      throw new AgentError('AGENT_SLOT_UNKNOWN', `slot ${s.name} (agent.slots) is not in the directory`, { slot: s.name });
    }
    if (entry.machine !== machine) {
      throw new AgentError('AGENT_SLOT_ELSEWHERE',
        `slot ${s.name} is on machine ${entry.machine} in the directory, but this agent is ${machine}`,
        { slot: s.name, directoryMachine: entry.machine, agentMachine: machine });
    }
  }
}

export function roleOf(layout: AgentLayout | null, slot: string): SlotRole {
  return rolesOf(layout, [slot]).get(slot) as SlotRole;
}

/**
 * The roles of `slots` in one pass over the stores (a round asks for every local slot: one
 * `roleOf` per slot walked every store each time, 64 × 64 per round, and its garbage was a good
 * part of the agent's GC).
 */
export function rolesOf(layout: AgentLayout | null, slots: readonly string[]): Map<string, SlotRole> {
  const none: SlotRole = { store: null, currentMaster: null, peer: null, storeState: null, slotState: null };
  const roles = new Map<string, SlotRole>();
  if (!layout) {
    for (const slot of slots) roles.set(slot, none);
    return roles;
  }
  const wanted = new Set(slots);
  for (const [name, store] of Object.entries(layout.stores)) {
    for (const slot of store.slots) {
      if (!wanted.has(slot) || roles.has(slot)) continue;
      const others = store.slots.filter((x) => x !== slot);
      // With more than one other slot, "the" replica is not defined: {peer} stays empty and the
      // repairs that need it are refused rather than guessed.
      const peerSlot = others.length === 1 ? others[0] : undefined;
      roles.set(slot, {
        store: name,
        currentMaster: store.currentMaster === slot,
        peer: peerSlot ? layout.slots[peerSlot]?.ip ?? null : null,
        storeState: store.state ?? null,
        slotState: layout.slots[slot]?.state ?? null,
      });
    }
  }
  for (const slot of slots) if (!roles.has(slot)) roles.set(slot, { ...none, slotState: layout.slots[slot]?.state ?? null });
  return roles;
}

/**
 * Why nothing may push this slot's records to another slot now (null: it may). Replaying an old
 * master's leftovers onto the new master would overwrite newer state, so only a known current
 * master of an active store may run sync_client.
 */
export function replicationRefusal(slot: string, role: SlotRole, options: { duringFailover?: boolean } = {}): string | null {
  if (role.currentMaster === null) return `slot ${slot}'s role is not known (no directory layout)`;
  if (!role.currentMaster) return `slot ${slot} is not the current master of store ${role.store}`;
  // A flush is what a controlled failover's drain asks for once the store is held
  // (`failing-over`: no new mail lands on this master), so it is allowed then; nothing else is.
  const allowed = options.duringFailover ? ['active', 'failing-over'] : ['active'];
  if (role.storeState !== null && !allowed.includes(role.storeState)) return `store ${role.store} is ${role.storeState}`;
  return null;
}

/** At most one repair or operation per slot at a time. Instance state, one per agent. */
export class SlotLocks {
  readonly #held = new Map<string, string>();

  /** Takes the slot for `what`, or returns who holds it. */
  acquire(slot: string, what: string): { release: () => void } | { heldBy: string } {
    const holder = this.#held.get(slot);
    if (holder !== undefined) return { heldBy: holder };
    this.#held.set(slot, what);
    return { release: () => this.#held.delete(slot) };
  }

  holder(slot: string): string | undefined {
    return this.#held.get(slot);
  }
}
