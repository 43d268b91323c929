/**
 * A planned mutation as one line of text (what `directory apply` prints), and run alone through
 * the public Directory interface (any backend, with or without the cache).
 */
import type { Directory } from './types.js';
import type { Mutation } from './rules.js';

/** Runs one mutation through the public Directory interface (so it works on any backend or cache). */
export async function runMutation(dir: Directory, m: Mutation, actor: string): Promise<void> {
  switch (m.op) {
    case 'createSlot': await dir.createSlot(m.input, actor); return;
    case 'updateSlot': await dir.updateSlot(m.input, actor); return;
    case 'deleteSlot': await dir.deleteSlot(m.name, actor); return;
    case 'setSlotState': await dir.setSlotState(m.name, m.state, actor); return;
    case 'createStore': await dir.createStore(m.input, actor); return;
    case 'updateStore': await dir.updateStore(m.input, actor); return;
    case 'deleteStore': await dir.deleteStore(m.name, actor); return;
    case 'setStoreState': await dir.setStoreState(m.name, m.state, actor); return;
    case 'failover': await dir.failover(m.store, m.options, actor); return;
    case 'createUser': await dir.createUser(m.input, actor); return;
    case 'deleteUser': await dir.deleteUser(m.name, actor); return;
    case 'setUserState': await dir.setUserState(m.name, m.state, actor); return;
    case 'beginMove': await dir.beginMove(m.name, m.toStore, actor); return;
    case 'finishMove': await dir.finishMove(m.name, actor); return;
    case 'abortMove': await dir.abortMove(m.name, actor); return;
    case 'setPasswordHash': await dir.setPasswordHash(m.name, m.hash, actor); return;
  }
}

/** One line per mutation, for `directory apply` output. Never shows a password hash. */
export function describeMutation(m: Mutation): string {
  switch (m.op) {
    case 'createSlot': case 'updateSlot': {
      const i = m.input;
      return `${m.op === 'createSlot' ? 'create' : 'update'} slot ${i.name}: machine ${i.machine} ip ${i.ip}`
        + ` lmtp ${i.lmtp ?? 24} imap ${i.imap ?? 143} pop3 ${i.pop3 ?? 110}${i.state ? ` state ${i.state}` : ''}`;
    }
    case 'deleteSlot': return `delete slot ${m.name}`;
    case 'setSlotState': return `set slot ${m.name} state ${m.state}`;
    case 'createStore': case 'updateStore': {
      const i = m.input;
      return `${m.op === 'createStore' ? 'create' : 'update'} store ${i.name}: slots ${i.slots.join(',')}`
        + ` preferredMaster ${i.preferredMaster}${i.currentMaster ? ` currentMaster ${i.currentMaster}` : ''}`
        + (i.epoch ? ` epoch ≥ ${i.epoch}` : '');
    }
    case 'deleteStore': return `delete store ${m.name}`;
    case 'setStoreState': return `set store ${m.name} state ${m.state}`;
    case 'failover': return `fail over store ${m.store} to ${m.options.to ?? '(the up replica)'}`
      + (m.options.expectedEpoch !== undefined ? ` (expecting epoch ${m.options.expectedEpoch})` : '');
    case 'createUser': return `create user ${m.input.name} on store ${m.input.store}${m.input.state ? ` state ${m.input.state}` : ''}`;
    case 'deleteUser': return `delete user ${m.name}`;
    case 'setUserState': return `set user ${m.name} state ${m.state}`;
    case 'beginMove': return `begin moving user ${m.name} to store ${m.toStore}`;
    case 'finishMove': return `finish moving user ${m.name}`;
    case 'abortMove': return `abort moving user ${m.name}`;
    case 'setPasswordHash': return `${m.hash === null ? 'clear' : 'set'} password of user ${m.name}`;
  }
}
