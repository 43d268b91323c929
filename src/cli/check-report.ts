/**
 * The human report of `check replication`: a summary line, then one table per kind of outcome that
 * is not "identical". Every difference names the user, the slots compared, the mailbox, what
 * differs, and the value on each side ("(missing)" where a side does not have the thing at all).
 */
import type { CheckResult, Difference } from '../check/index.js';
import { formatTable, type Cell } from './table.js';

function side(value: string | null, field: string): string {
  if (value === null) return '(missing)';
  if (value === '' && field === 'flags') return '(none)';
  return value;
}

function what(d: Difference): string {
  return d.uid === undefined ? d.field : `${d.field} uid ${d.uid}`;
}

function section(title: string, headers: string[], rows: Cell[][]): string {
  return rows.length === 0 ? '' : `\n${title} (${rows.length}):\n` + formatTable(headers, rows).replace(/^/gm, '  ');
}

function scopeText(r: CheckResult): string {
  if (r.scope.all) return 'all users';
  const parts = [];
  if (r.scope.stores?.length) parts.push(`store ${r.scope.stores.join(', ')}`);
  if (r.scope.users?.length) parts.push(`user ${r.scope.users.join(', ')}`);
  return parts.join('; ');
}

export function renderReport(r: CheckResult): string {
  const f = r.figures;
  const head = `replication check (${f.mode}) of ${f.usersTotal} user(s), ${scopeText(r)}: ${f.usersIdentical} identical, `
    + `${f.usersDifferent} different, ${f.usersInFlight} in flight, ${f.usersUnchecked} not checked `
    + `(${(f.durationMs / 1000).toFixed(1)} s)\n`;
  const notes = r.differentUsers.filter((u) => u.note).map((u) => `note: ${u.user}: ${u.note}\n`).join('');
  return head
    + section('Differences', ['user', 'slots', 'mailbox', 'what', 'master', 'replica', 'message-id'],
      r.differences.map((d) => [d.user, `${d.masterSlot}→${d.replicaSlot}`, d.mailbox, what(d), side(d.master, d.field),
        side(d.replica, d.field), d.messageId ?? null]))
    + notes
    + section('In flight (not compared: replication was moving)', ['user', 'store', 'reason'],
      r.inFlight.map((u) => [u.user, u.store, u.reason]))
    + section('Not checked', ['user', 'store', 'code', 'reason'], r.unchecked.map((u) => [u.user, u.store, u.code, u.reason]))
    + section('Repairs', ['user', 'slot', 'result'], r.repairs.map((x) => [x.user, x.slot,
      x.queued ? (x.flush ? `queued; flush failed [${x.flush.code}]: ${x.flush.message}` : 'queued and flushed')
        : `failed [${x.error?.code}]: ${x.error?.message}`]));
}
