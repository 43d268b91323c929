/**
 * Cyrus mailbox names as the admin sees them, for one user. With `unixhierarchysep: no` the
 * separator is "." and a dot inside a user name is stored as "^" (`john.doe` → `user.john^doe`);
 * with `unixhierarchysep: yes` the separator is "/" and dots stay. With virtual domains the admin
 * sees `user.alice.Sent@example.com`: the domain comes last, after every folder.
 * Seen on Cyrus 3.6.1: `LIST "" ("user.alice" "user.alice.*")` returns INBOX and every folder
 * and not `user.alice2`, which the single pattern `user.alice*` would also match.
 */

export type HierarchySeparator = '.' | '/';

function split(user: string): { local: string; domain: string | null } {
  const at = user.lastIndexOf('@');
  return at < 0 ? { local: user, domain: null } : { local: user.slice(0, at), domain: user.slice(at + 1) };
}

/** The admin's name for the user's INBOX. */
export function inboxName(user: string, sep: HierarchySeparator): string {
  const { local, domain } = split(user);
  const l = sep === '.' ? local.replace(/\./g, '^') : local;
  return `user${sep}${l}${domain ? `@${domain}` : ''}`;
}

/** LIST patterns that match the user's INBOX and every folder below it, and nothing else. */
export function userPatterns(user: string, sep: HierarchySeparator): [string, string] {
  const { domain } = split(user);
  const inbox = inboxName(user, sep);
  const bare = domain ? inbox.slice(0, -(domain.length + 1)) : inbox;
  return [inbox, `${bare}${sep}*${domain ? `@${domain}` : ''}`];
}

/** True when `mailbox` (an admin-view name) belongs to `user`: a guard against a pattern matching too much. */
export function belongsTo(mailbox: string, user: string, sep: HierarchySeparator): boolean {
  const [inbox] = userPatterns(user, sep);
  const { domain } = split(user);
  if (mailbox === inbox) return true;
  const suffix = domain ? `@${domain}` : '';
  if (!mailbox.endsWith(suffix)) return false;
  const bare = domain ? inbox.slice(0, -suffix.length) : inbox;
  return mailbox.startsWith(`${bare}${sep}`);
}
