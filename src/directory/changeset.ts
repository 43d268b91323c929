/**
 * A change set: many mutations checked one after another against a copy of the directory and
 * turned into the complete next state, ready to be made visible at once (issue 11 item 3: a
 * reader sees the directory before or after a `directory apply`, never in between). Both backends
 * build one: the embedded backend saves `next` in one write, the Redis backend writes it in one
 * script (or stages big tables and swaps them in, see redis/commit.ts).
 *
 * Copy-on-write: a table is copied the first time a mutation touches it, so planning 100,000 user
 * mutations copies the users table once, and a single slot change copies no users at all.
 */
import type { AuditRecord, ChangeEvent, DirectorySnapshot } from './model.js';
import { auditView } from './backend.js';
import { checkActor } from './checks.js';
import { planMutation, retire, targetOf, type Change, type EntryKind, type Mutation } from './rules.js';

/** Above this many audit records, one "everything changed" event says it more cheaply. */
export const MAX_EVENTS = 1_000;

const TABLE = { slot: 'slots', store: 'stores', user: 'users' } as const;

/** A snapshot that may be changed in place without touching the one it was made from. */
export class DraftSnapshot {
  readonly snap: DirectorySnapshot;
  readonly #copied = new Set<string>();

  constructor(base: DirectorySnapshot) {
    this.snap = { ...base };
  }

  apply(changes: Change[]): void {
    for (const c of changes) {
      const key = TABLE[c.kind];
      if (!this.#copied.has(key)) {
        (this.snap as unknown as Record<string, unknown>)[key] = { ...this.snap[key] };
        this.#copied.add(key);
      }
      const table = this.snap[key] as Record<string, unknown>;
      if (c.after === null) delete table[c.name];
      else table[c.name] = c.after;
      if (c.kind === 'store') retire(this.snap, c); // copies retiredEpochs itself
    }
  }
}

export interface ChangeSet {
  fromVersion: number;
  /** The directory after every mutation; `next.version` = fromVersion + records.length. */
  next: DirectorySnapshot;
  /** One per mutation that changed something, oldest first, versions fromVersion+1 … */
  records: AuditRecord[];
  /** What to publish: one event per record, or one `*` event above MAX_EVENTS records. */
  events: ChangeEvent[];
  /** Names of the entries that differ between base and next (or were touched on the way). */
  changed: Record<EntryKind, Set<string>>;
}

/**
 * Runs `mutations` in order against `base` (which is not changed). Throws the first mutation's
 * DirectoryRuleError / NotFound / Conflict: the caller then writes nothing.
 */
export function buildChangeSet(base: DirectorySnapshot, mutations: Mutation[], actor: string, at = new Date()): ChangeSet {
  checkActor(actor);
  const draft = new DraftSnapshot(base);
  const records: AuditRecord[] = [];
  const changed: ChangeSet['changed'] = { slot: new Set(), store: new Set(), user: new Set() };
  const when = at.toISOString();
  for (const m of mutations) {
    const changes = planMutation(draft.snap, m);
    if (changes.length === 0) continue; // a no-op, as for a single call: no version, no record
    draft.apply(changes);
    draft.snap.version++;
    const first = changes[0] as Change;
    records.push({ version: draft.snap.version, at: when, actor, action: m.op, target: targetOf(m),
      before: auditView(first.before), after: auditView(first.after) });
    for (const c of changes) changed[c.kind].add(c.name);
  }
  const next = draft.snap;
  const events: ChangeEvent[] = records.length <= MAX_EVENTS
    ? records.map((r) => ({ version: r.version, action: r.action, target: r.target }))
    : [{ version: next.version, action: 'apply', target: '*' }];
  return { fromVersion: base.version, next, records, events, changed };
}
