/**
 * Deliveries in flight per backend slot: client transactions that routed a recipient to the slot
 * and have not ended (replied after DATA, reset or closed). A failover's hold asks every proxy
 * for this (admin `GET /inflight`), so it switches as soon as nothing can still land on the old
 * master instead of sleeping a fixed time for messages that may still be in DATA.
 *
 * Counted from the moment the route is resolved, not from the backend's 250: a RCPT resolved just
 * before the hold and still waiting for the backend's verdict can still become a delivery.
 */
import { ConfigError } from '../core/errors.js';
import type { DirectoryReader } from '../directory/index.js';

export class InflightBySlot {
  readonly #bySlot = new Map<string, number>();

  add(slot: string): void {
    this.#bySlot.set(slot, (this.#bySlot.get(slot) ?? 0) + 1);
  }

  remove(slot: string): void {
    const n = (this.#bySlot.get(slot) ?? 0) - 1;
    if (n > 0) this.#bySlot.set(slot, n);
    else this.#bySlot.delete(slot);
  }

  count(slot: string): number {
    return this.#bySlot.get(slot) ?? 0;
  }
}

export interface InflightAnswer {
  slot: string;
  deliveries: number;
  /** The store of `user` as this proxy routes it now (null: no such user here). */
  store: { name: string; state: string; epoch: number; currentMaster: string } | null;
}

/**
 * The answer to `GET /inflight?slot=S&user=U`. The user's route is resolved exactly as a RCPT
 * would be, through this proxy's cache: only once it reads the store as failing-over can no new
 * RCPT route to the slot here, and only then does a count of 0 mean nothing more can land there.
 * (The count is read after that lookup: a RCPT whose lookup finished earlier has been counted.)
 */
export async function inflightAnswer(directory: Pick<DirectoryReader, 'resolve'>, inflight: InflightBySlot | null,
  query: URLSearchParams): Promise<InflightAnswer> {
  const slot = query.get('slot');
  const user = query.get('user');
  if (!slot || !user) {
    throw new ConfigError('(request)', [{ path: slot ? 'user' : 'slot', message: 'required: GET /inflight?slot=SLOT&user=USER' }]);
  }
  const route = await directory.resolve(user);
  return {
    slot, deliveries: inflight?.count(slot) ?? 0,
    store: route ? { name: route.store.name, state: route.store.state, epoch: route.store.epoch, currentMaster: route.store.currentMaster } : null,
  };
}
