/**
 * The rules of one entry (a slot's fields, a store's layout, a name), each returning EVERY rule
 * the entry breaks rather than the first: a directory file is refused with all of its problems
 * listed (issue 11 item 7), while a single mutation throws the first (`firstOrValue`). The Redis
 * backend runs the same rules in Lua (src/directory/redis/scripts/common.lua).
 */
import { isIP } from 'node:net';
import { DirectoryNotFoundError, DirectoryRuleError, type StorerouteError } from '../core/errors.js';
import { DEFAULT_PORTS, SLOT_STATES, type DirectorySnapshot, type Slot, type SlotInput, type Store } from './model.js';

/** Names: what an operator can type and a Redis key / log line can carry without quoting. */
export const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
/** Users: `alice` or `alice@example.com`, lower-case (the canonical form). */
const USER_NAME = /^[a-z0-9._+=-][a-z0-9._+=-]{0,127}(@[a-z0-9.-]{1,253})?$/;

export function rule(name: string, message: string): DirectoryRuleError {
  return new DirectoryRuleError(name, message);
}

/** Throws the first error, if any. */
export function throwFirst(errors: StorerouteError[]): void {
  if (errors.length > 0) throw errors[0] as StorerouteError;
}

/** The canonical form of a user name as looked up: trimmed, lower-case. */
export function canonicalUser(name: string): string {
  return name.trim().toLowerCase();
}

export function checkName(kind: 'slot' | 'store', name: unknown): string {
  if (typeof name !== 'string' || !NAME.test(name)) {
    throw rule('INVALID_NAME', `${kind} name ${JSON.stringify(name)} must match ${NAME.source}`);
  }
  return name;
}

export function userNameError(name: unknown): DirectoryRuleError | null {
  return typeof name === 'string' && USER_NAME.test(name) ? null
    : rule('INVALID_NAME', `user name ${JSON.stringify(name)} must be lower-case, like alice or alice@example.com`);
}

export function checkUserName(name: unknown): string {
  const err = userNameError(name);
  if (err) throw err;
  return name as string;
}

export function enumError(what: string, allowed: readonly string[], value: unknown): DirectoryRuleError | null {
  return typeof value === 'string' && allowed.includes(value) ? null
    : rule('INVALID_STATE', `${what} ${JSON.stringify(value)} must be one of ${allowed.join(', ')}`);
}

export function checkEnum<T extends string>(what: string, allowed: readonly T[], value: unknown): T {
  const err = enumError(what, allowed, value);
  if (err) throw err;
  return value as T;
}

function portError(what: string, value: unknown): DirectoryRuleError | null {
  return typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= 65535 ? null
    : rule('INVALID_PORT', `${what} ${JSON.stringify(value)} must be an integer 1-65535`);
}

export function checkActor(actor: unknown): string {
  if (typeof actor !== 'string' || actor.length === 0 || actor.length > 200) {
    throw rule('INVALID_ACTOR', 'actor must be a non-empty string of at most 200 characters');
  }
  return actor;
}

/** Every rule a slot input breaks (empty: valid). */
export function slotErrors(input: SlotInput, current?: Slot): DirectoryRuleError[] {
  const errors: DirectoryRuleError[] = [];
  const push = (e: DirectoryRuleError | null) => { if (e) errors.push(e); };
  const name = input.name;
  if (typeof name !== 'string' || !NAME.test(name)) push(rule('INVALID_NAME', `slot name ${JSON.stringify(name)} must match ${NAME.source}`));
  if (typeof input.machine !== 'string' || !NAME.test(input.machine)) {
    push(rule('INVALID_MACHINE', `slot ${name}: machine ${JSON.stringify(input.machine)} must match ${NAME.source}`));
  }
  if (typeof input.ip !== 'string' || isIP(input.ip) === 0) {
    push(rule('INVALID_IP', `slot ${name}: ip ${JSON.stringify(input.ip)} must be an IP literal (nginx needs one)`));
  }
  for (const port of ['lmtp', 'imap', 'pop3'] as const) push(portError(`slot ${name}: ${port} port`, input[port] ?? DEFAULT_PORTS[port]));
  push(enumError(`slot ${name}: state`, SLOT_STATES, input.state ?? current?.state ?? 'up'));
  return errors;
}

/** A complete, valid Slot from an input (defaults filled), or the first DirectoryRuleError. */
export function slotFromInput(input: SlotInput, current?: Slot): Slot {
  throwFirst(slotErrors(input, current));
  return {
    name: input.name,
    machine: input.machine,
    ip: input.ip,
    lmtp: input.lmtp ?? DEFAULT_PORTS.lmtp,
    imap: input.imap ?? DEFAULT_PORTS.imap,
    pop3: input.pop3 ?? DEFAULT_PORTS.pop3,
    state: input.state ?? current?.state ?? 'up',
  };
}

/** The store that holds `slot`, other than `except`. */
export function storeOfSlot(snap: DirectorySnapshot, slot: string, except?: string): Store | undefined {
  for (const store of Object.values(snap.stores)) {
    if (store.name !== except && store.slots.includes(slot)) return store;
  }
  return undefined;
}

/**
 * How a layout check sees the slots: a Slot, `undefined` (no such slot), or `null` (the slot
 * exists but is itself broken and already reported: check nothing that needs its fields).
 */
export type SlotLookup = (name: string) => Slot | null | undefined;

/**
 * Every rule a store's layout breaks: >= 2 slots, each existing, listed once, in no other store,
 * on pairwise different machines; both masters among them. Shared by create and update.
 */
export function storeLayoutErrors(snap: DirectorySnapshot, store: Store, lookup?: SlotLookup): StorerouteError[] {
  const name = store.name;
  const slotOf = lookup ?? ((n: string) => snap.slots[n]);
  const errors: StorerouteError[] = [];
  if (!Array.isArray(store.slots) || store.slots.length < 2) {
    errors.push(rule('TOO_FEW_SLOTS', `store ${name} needs at least 2 slots`));
    if (!Array.isArray(store.slots)) return errors;
  }
  const machines = new Map<string, string>();
  const seen = new Set<string>();
  for (const slotName of store.slots) {
    if (typeof slotName !== 'string') {
      errors.push(rule('INVALID_NAME', `store ${name}: slot names must be strings`));
      continue;
    }
    if (seen.has(slotName)) {
      errors.push(rule('DUPLICATE_SLOT', `store ${name} lists slot ${slotName} twice`));
      continue;
    }
    seen.add(slotName);
    const slot = slotOf(slotName);
    if (slot === undefined) errors.push(new DirectoryNotFoundError('slot', slotName));
    const other = storeOfSlot(snap, slotName, name);
    if (other) errors.push(rule('SLOT_IN_STORE', `slot ${slotName} already belongs to store ${other.name}`));
    if (!slot) continue;
    const twin = machines.get(slot.machine);
    if (twin !== undefined) {
      errors.push(rule('SAME_MACHINE', `store ${name}: slots ${twin} and ${slotName} are both on machine ${slot.machine}`));
    } else machines.set(slot.machine, slotName);
  }
  if (!seen.has(store.preferredMaster)) {
    errors.push(rule('MASTER_NOT_IN_STORE', `store ${name}: preferredMaster ${store.preferredMaster} is not one of its slots`));
  }
  // Equal to preferredMaster (the default): already reported above.
  if (!seen.has(store.currentMaster) && store.currentMaster !== store.preferredMaster) {
    errors.push(rule('MASTER_NOT_IN_STORE', `store ${name}: currentMaster ${store.currentMaster} is not one of its slots`));
  }
  return errors;
}

/** A createStore epoch floor: a non-negative integer. */
export function epochError(name: string, epoch: unknown): DirectoryRuleError | null {
  return epoch === undefined || (typeof epoch === 'number' && Number.isSafeInteger(epoch) && epoch >= 0) ? null
    : rule('INVALID_EPOCH', `store ${name}: epoch ${JSON.stringify(epoch)} must be a non-negative integer`);
}

/** The epoch a store created now starts at: above any epoch a deleted store of that name reached. */
export function startEpoch(snap: DirectorySnapshot, name: string, floor: number | undefined): number {
  const retired = snap.retiredEpochs?.[name];
  return Math.max(floor ?? 0, retired === undefined ? 0 : retired + 1);
}
