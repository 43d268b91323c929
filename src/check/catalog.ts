/**
 * A slot's mailbox names, by user, from one slot-wide `LIST "" "user.*"`.
 *
 * Why: on Cyrus 3.6.1 every admin LIST scans the whole mailbox list, whatever the pattern (measured
 * with 5,000 mailboxes: 11 ms for `LIST "" "user.u0100"` as for `LIST "" "user.*"`'s 70 ms per
 * 5,000 names), while GETMETADATA on named mailboxes costs ~0.1 ms each. One LIST per slot then one
 * GETMETADATA per user keeps a whole-slot check linear instead of quadratic in the mailbox count.
 *
 * The names are only as fresh as the listing: it is taken again once older than `maxAgeMs` (a
 * rate-limited run lasts hours), a user's names are handed out once (a re-check lists that user
 * afresh), and a name that has gone meanwhile makes GETMETADATA fail, which falls back to a fresh
 * per-user LIST too. Only users still to be checked are kept, so memory shrinks as the run goes.
 */
import type { Logger } from 'pino';
import type { HierarchySeparator } from './names.js';
import type { SlotPool } from './pool.js';

/** The directory user a Cyrus admin-view name belongs to (`user.john^doe.Sent@x.org` → `john.doe@x.org`). */
export function ownerOf(mailbox: string, sep: HierarchySeparator): string | null {
  const prefix = `user${sep}`;
  if (!mailbox.startsWith(prefix)) return null;
  const at = mailbox.lastIndexOf('@');
  const domain = at > prefix.length ? mailbox.slice(at + 1) : null;
  const path = domain === null ? mailbox.slice(prefix.length) : mailbox.slice(prefix.length, at);
  const cut = path.indexOf(sep);
  const local = cut < 0 ? path : path.slice(0, cut);
  if (local === '') return null;
  const user = (sep === '.' ? local.replace(/\^/g, '.') : local).toLowerCase();
  return domain === null ? user : `${user}@${domain.toLowerCase()}`;
}

export class SlotCatalog {
  readonly #pool: SlotPool;
  readonly #pending: Set<string>;
  readonly #maxAgeMs: number;
  readonly #now: () => number;
  #names: Promise<Map<string, string[]>> | null = null;
  #takenAt = 0;

  readonly #log: Logger;

  constructor(pool: SlotPool, users: Iterable<string>, maxAgeMs: number, now: () => number, log: Logger) {
    this.#pool = pool;
    this.#log = log;
    this.#pending = new Set(users);
    this.#maxAgeMs = maxAgeMs;
    this.#now = now;
  }

  /**
   * The user's mailbox names from the listing (taken now if there is none or it is too old), or
   * null once they were handed out. Throws what the listing threw (the slot is then failed).
   */
  async take(user: string): Promise<string[] | null> {
    if (!this.#pending.has(user)) return null;
    if (!this.#names || this.#now() - this.#takenAt > this.#maxAgeMs) {
      this.#takenAt = this.#now();
      this.#names = this.#list();
      // A failed listing is not kept: the pool has recorded the slot's failure by then.
      this.#names.catch(() => { this.#names = null; });
    }
    const names = await this.#names;
    this.#pending.delete(user);
    const mine = names.get(user) ?? [];
    names.delete(user);
    return mine;
  }

  /** Called for a user checked without the catalog: its names need not be kept. */
  forget(user: string): void {
    this.#pending.delete(user);
  }

  #list(): Promise<Map<string, string[]>> {
    return this.#pool.use(async (c) => {
      const out = new Map<string, string[]>();
      const started = this.#now();
      let listed = 0;
      await c.listNames(`user${c.separator}*`, (name) => {
        listed++;
        const owner = ownerOf(name, c.separator);
        if (owner === null || !this.#pending.has(owner)) return;
        const list = out.get(owner);
        if (list) list.push(name);
        else out.set(owner, [name]);
      });
      this.#log.debug({ slot: this.#pool.slot.name, listed, users: out.size, ms: this.#now() - started }, 'check_catalog_listed');
      return out;
    });
  }
}
