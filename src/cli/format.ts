/**
 * Shared renderings of directory entries for human and --json output. Password hashes never
 * leave the directory through the CLI: they are shown as set/unset only.
 */
import { formatTable, type Cell } from './table.js';
import { isRunningBackwards, type AuditRecord, type DirectorySnapshot, type Slot, type Store, type User } from '../directory/index.js';

/** A user record fit for printing: the hash replaced by a flag. */
export function publicUser(user: User): Omit<User, 'passwordHash'> & { hasPassword: boolean } {
  const { passwordHash, ...rest } = user;
  return { ...rest, hasPassword: passwordHash !== undefined && passwordHash !== null && passwordHash !== '' };
}

/** Deep copy with every `passwordHash` value replaced (audit records carry whole user entries). */
export function redactHashes(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redactHashes);
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    out[k] = k === 'passwordHash' && v !== undefined && v !== null ? '[redacted]' : redactHashes(v);
  }
  return out;
}

export function slotRole(snap: DirectorySnapshot, slot: string): { store: string | null; role: string | null } {
  for (const store of Object.values(snap.stores)) {
    if (!store.slots.includes(slot)) continue;
    return { store: store.name, role: store.currentMaster === slot ? 'master' : 'replica' };
  }
  return { store: null, role: null };
}

export function slotTable(snap: DirectorySnapshot, slots: Slot[]): string {
  const rows: Cell[][] = slots.map((s) => {
    const { store, role } = slotRole(snap, s.name);
    return [s.name, s.machine, s.ip, s.lmtp, s.imap, s.pop3, s.state, store, role];
  });
  return formatTable(['slot', 'machine', 'ip', 'lmtp', 'imap', 'pop3', 'state', 'store', 'role'], rows);
}

export function userCounts(snap: DirectorySnapshot): Map<string, number> {
  const counts = new Map<string, number>();
  for (const u of Object.values(snap.users)) counts.set(u.store, (counts.get(u.store) ?? 0) + 1);
  return counts;
}

export function storeTable(snap: DirectorySnapshot, stores: Store[]): string {
  const counts = userCounts(snap);
  const rows: Cell[][] = stores.map((s) => [
    s.name, s.state, s.currentMaster, s.preferredMaster,
    s.slots.filter((x) => x !== s.currentMaster).join(',') || '-', s.epoch,
    isRunningBackwards(s) ? 'yes' : 'no', counts.get(s.name) ?? 0,
  ]);
  return formatTable(['store', 'state', 'master', 'preferred', 'replicas', 'epoch', 'backwards', 'users'], rows);
}

export function byName<T extends { name: string }>(entries: Record<string, T>): T[] {
  return Object.values(entries).sort((a, b) => a.name.localeCompare(b.name));
}

function short(value: unknown): string {
  if (value === undefined) return '∅';
  if (typeof value === 'string') return value;
  return JSON.stringify(value);
}

/** An event's detail in one line: `<result>: <detail>` when it has both (the agent's records do). */
function describeEvent(detail: unknown): string {
  if (typeof detail === 'string') return detail;
  const d = detail as Record<string, unknown> | null;
  if (d && typeof d === 'object' && typeof d.result === 'string' && typeof d.detail === 'string') return `${d.result}: ${d.detail}`;
  return JSON.stringify(detail);
}

/** "currentMaster slot101→slot201, epoch 3→4" — what an audit record changed, in one line. */
export function describeChange(record: AuditRecord): string {
  if (record.detail !== undefined) return describeEvent(record.detail);
  const before = record.before as Record<string, unknown> | null | undefined;
  const after = record.after as Record<string, unknown> | null | undefined;
  if (!before && after) return 'created';
  if (before && !after) return 'deleted';
  if (!before || !after || typeof before !== 'object' || typeof after !== 'object') return '';
  const parts: string[] = [];
  for (const key of new Set([...Object.keys(before), ...Object.keys(after)])) {
    if (key === 'name') continue;
    const a = before[key];
    const b = after[key];
    if (JSON.stringify(a) === JSON.stringify(b)) continue;
    parts.push(key === 'passwordHash' ? (b === undefined || b === null ? 'password cleared' : 'password set')
      : `${key} ${short(a)}→${short(b)}`);
  }
  return parts.join(', ');
}
