/**
 * One user, one pass: the master's mailboxes against each replica's. Quick is one command per side
 * on a pooled admin connection (GETMETADATA of the catalogued names, or a per-user LIST); STATUS
 * (fallback) and deep need a session authorised as the user, opened for this user only and closed
 * before returning.
 */
import type { Slot } from '../directory/index.js';
import {
  compareMailboxLists, compareMessages, compareStatus, type MailboxDifference, type MailboxEntry,
} from './compare.js';
import type { SlotCatalog } from './catalog.js';
import { CheckError } from './errors.js';
import type { CyrusConnection } from './imap.js';
import { belongsTo, userPatterns } from './names.js';
import type { SlotPool } from './pool.js';

export type CheckMode = 'quick' | 'deep' | 'deep-all';

export interface Difference extends MailboxDifference {
  user: string;
  store: string;
  /** The slots compared: the store's current master and the replica that differs from it. */
  masterSlot: string;
  replicaSlot: string;
}

export interface UserRoute {
  user: string;
  store: string;
  master: Slot;
  replicas: Slot[];
}

export interface UserComparison {
  differences: Difference[];
}

/** Sessions authorised as the user, opened on first need. */
class UserSessions {
  readonly #open = new Map<string, Promise<CyrusConnection>>();
  constructor(private readonly user: string, private readonly pools: (slot: Slot) => SlotPool) {}

  get(slot: Slot): Promise<CyrusConnection> {
    let c = this.#open.get(slot.name);
    if (!c) {
      c = this.pools(slot).openAs(this.user);
      this.#open.set(slot.name, c);
    }
    return c;
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.#open.values()].map(async (c) => (await c).close()));
  }
}

/**
 * The user's mailboxes on one slot with their CRCs: the names from the slot's catalog and one
 * GETMETADATA, or (no catalog, a re-check, or a catalogued name gone meanwhile) one per-user LIST
 * with RETURN (METADATA), which costs a scan of the slot's whole mailbox list (catalog.ts).
 */
async function listing(pool: SlotPool, catalog: SlotCatalog | null, user: string): Promise<Map<string, MailboxEntry>> {
  const names = catalog ? await catalog.take(user) : null;
  return pool.use(async (c) => {
    if (names) {
      try {
        return await c.metadata(names);
      } catch (err) {
        if (!(err instanceof CheckError && err.code === 'IMAP_REFUSED')) throw err;
      }
    }
    const found = await c.listUser(userPatterns(user, c.separator));
    // Belt and braces: a pattern must never let another user's mailbox into the comparison.
    for (const name of found.keys()) if (!belongsTo(name, user, c.separator)) found.delete(name);
    return found;
  });
}

export interface CompareOptions {
  mode: CheckMode;
  pools: (slot: Slot) => SlotPool;
  /** The slot's catalog, or null to list the user on its own (small scopes, re-checks). */
  catalogs: (slot: Slot) => SlotCatalog | null;
  /** Run the message-level comparison now (deep modes only, on the verdict-giving pass). */
  deepNow: boolean;
}

/**
 * Compares the user on `route`. `deep` decides which mailboxes get a message-level comparison:
 * none (quick), those quick found different, or all of them. Throws CheckError when a side
 * cannot be read (the caller reports the user as not checked).
 */
export async function compareUser(route: UserRoute, opts: CompareOptions): Promise<UserComparison> {
  const { user } = route;
  const { mode, pools, catalogs, deepNow } = opts;
  const sessions = new UserSessions(user, pools);
  try {
    // allSettled, not all: a side that fails first must not leave the other side's command running
    // behind our back (its failure, e.g. a refused login, is the slot's to record too).
    const settled = await Promise.allSettled([route.master, ...route.replicas].map((s) => listing(pools(s), catalogs(s), user)));
    const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    const [master, ...replicas] = settled.map((r) => (r as PromiseFulfilledResult<Map<string, MailboxEntry>>).value);
    const differences: Difference[] = [];
    for (const [i, replicaSlot] of route.replicas.entries()) {
      const replica = replicas[i]!;
      const tag = (d: MailboxDifference): Difference => ({ ...d, user, store: route.store, masterSlot: route.master.name, replicaSlot: replicaSlot.name });
      const quick = compareMailboxLists(master!, replica);
      differences.push(...quick.differences.map(tag));
      const differing = new Set(quick.differing);
      for (const mailbox of quick.needStatus) {
        const [m, r] = await Promise.all([sessions.get(route.master), sessions.get(replicaSlot)]);
        const [ms, rs] = await Promise.all([m.status(mailbox), r.status(mailbox)]);
        const found = compareStatus(mailbox, ms, rs);
        if (found.length > 0) differing.add(mailbox);
        differences.push(...found.map(tag));
      }
      const deepTargets = !deepNow || mode === 'quick' ? [] : mode === 'deep-all' ? quick.common : [...differing].sort();
      for (const mailbox of deepTargets) {
        const [m, r] = await Promise.all([sessions.get(route.master), sessions.get(replicaSlot)]);
        const [mm, rm] = await Promise.all([m.messages(mailbox), r.messages(mailbox)]);
        differences.push(...compareMessages(mailbox, mm, rm).map(tag));
      }
    }
    return { differences };
  } finally {
    await sessions.close();
  }
}
