/**
 * Where does a recipient go? The one place that answers it: normalise the address, ask the
 * directory, and turn the directory's answer into either a Route to deliver on or the named
 * outcome that refuses it (UNKNOWN_USER, STORE_DOWN …; reply.ts turns each into the line postfix
 * gets, and pins the table). The backend's own verdict is handled by the caller (transaction.ts).
 *
 * Outcomes (issue #3; test/lmtp/reply-rules.test.ts pins their exact lines):
 *   unknown user                                  UNKNOWN_USER        (permanent: the only "not found" that is)
 *   suspended user                                USER_SUSPENDED      (permanent: an operator's decision, below)
 *   store failing-over / down                     STORE_FAILING_OVER / STORE_DOWN
 *   user moving                                   USER_MOVING
 *   master slot not up                            SLOT_NOT_UP
 *   directory unreachable, anything unexpected    the error itself    (transient)
 *
 * Suspended users are refused permanently (550 5.2.1 "mailbox disabled"). Suspension is set by an
 * operator on purpose and holds until one lifts it; tempfailing would park the mail in postfix's
 * queue for days and bounce it anyway at maximal_queue_lifetime, later and less clearly. Moves and
 * outages, which do end by themselves, stay transient.
 */
import type { Route } from '../directory/index.js';
import type { DirectoryReader } from '../directory/index.js';
import { asciiDomain } from './address.js';
import type { LmtpOutcome } from './reply.js';

export interface RecipientRules {
  /** Characters that start a +detail (postfix recipient_delimiter); "" turns stripping off. */
  recipientDelimiter: string;
  /** Domains whose local part is also looked up; empty: every domain. A-labels or Unicode. */
  localDomains: string[];
}

/** Why the directory's answer refuses a recipient (reply.ts gives each its reply). */
export type RouteRefusal = Extract<LmtpOutcome,
  'UNKNOWN_USER' | 'USER_MOVING' | 'USER_SUSPENDED' | 'STORE_FAILING_OVER' | 'STORE_DOWN' | 'SLOT_NOT_UP'>;

export type RecipientDecision =
  | { ok: true; route: Route; lookup: string }
  /** `outcome`: stable, for the reply and logs (lmtp_rcpt_rejected); `reason`: human detail. */
  | { ok: false; outcome: RouteRefusal; reason: string }
  /** The directory could not answer (unavailable, or anything unexpected): `error` as thrown. */
  | { ok: false; error: unknown; reason: string };

/**
 * The directory names to try, in order: the whole address (lower-cased, +detail stripped, domain
 * in A-labels), then its local part when the domain is local (or no local domains are configured).
 */
export function lookupNames(address: string, rules: RecipientRules): string[] {
  const lower = address.toLowerCase();
  const at = lower.lastIndexOf('@');
  let local = unquote(at === -1 ? lower : lower.slice(0, at));
  const domain = at === -1 ? '' : (asciiDomain(lower.slice(at + 1)) ?? lower.slice(at + 1));
  if (rules.recipientDelimiter) {
    let cut = -1;
    for (const d of rules.recipientDelimiter) {
      const i = local.indexOf(d);
      // A delimiter at position 0 is part of the name ("+list@"), not a detail separator.
      if (i > 0 && (cut === -1 || i < cut)) cut = i;
    }
    if (cut > 0) local = local.slice(0, cut);
  }
  if (!domain) return [local];
  const names = [`${local}@${domain}`];
  const locals = rules.localDomains.map((d) => asciiDomain(d.toLowerCase()) ?? d.toLowerCase());
  if (locals.length === 0 || locals.includes(domain)) names.push(local);
  return names;
}

/**
 * A quoted local part names the same mailbox as its unquoted content (RFC 5321 §4.1.2:
 * `"john.doe"@x` is `john.doe@x`), so it is looked up without quotes and backslash escapes. The
 * backend still gets the address as given. smtp-server refuses some quoted forms itself before we
 * see them (501 5.1.3): any with a space, an "@" or ".." inside the quotes
 * (its checks split on whitespace and "@" and are not quote-aware); see test/lmtp/address.test.ts.
 */
function unquote(local: string): string {
  if (local.length < 2 || local[0] !== '"' || local[local.length - 1] !== '"') return local;
  return local.slice(1, -1).replace(/\\(.)/g, '$1');
}

function no(outcome: RouteRefusal, reason: string): RecipientDecision {
  return { ok: false, outcome, reason };
}

export async function resolveRecipient(address: string, directory: Pick<DirectoryReader, 'resolve'>,
  rules: RecipientRules): Promise<RecipientDecision> {
  let route: Route | null = null;
  let lookup = '';
  try {
    for (const name of lookupNames(address, rules)) {
      route = await directory.resolve(name);
      if (route) { lookup = name; break; }
    }
  } catch (err) {
    return { ok: false, error: err, reason: `directory: ${(err as Error | null)?.message}` };
  }
  if (!route) return no('UNKNOWN_USER', 'unknown user');
  const { user, store, master } = route;
  if (user.state === 'moving') return no('USER_MOVING', 'user moving');
  if (user.state === 'suspended') return no('USER_SUSPENDED', 'user suspended');
  if (store.state === 'failing-over') return no('STORE_FAILING_OVER', 'store failing over');
  if (store.state === 'down') return no('STORE_DOWN', 'store down');
  if (master.state !== 'up') return no('SLOT_NOT_UP', `master slot ${master.state}`);
  return { ok: true, route, lookup };
}
