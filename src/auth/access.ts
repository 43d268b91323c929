/**
 * Who may ask: nginx's addresses (allowFrom) and the shared-secret header. Also the throttle's
 * exempt networks, which use the same CIDR lists.
 */
import { BlockList, isIP } from 'node:net';
import { timingSafeEqual } from 'node:crypto';
import type { Config } from '../config/index.js';
import type { FileProblem } from '../core/errors.js';

/**
 * Rules across auth keys that the schema does not hold, checked when the auth server is created
 * (`storeroute serve` then refuses to start, exit 2). Not in the schema because a config without
 * an auth block must still parse for every other command and component.
 *
 * The shared secret is required: allowFrom alone (by default every local address) would let any
 * local process ask where a user's mailbox lives, and learn which users exist from OK vs
 * Invalid. `allowWithoutSecret: true` is the explicit, logged opt-out.
 */
export function authConfigProblems(auth: Config['auth']): FileProblem[] {
  if (!auth.enabled || auth.sharedSecret || auth.allowWithoutSecret) return [];
  return [{
    path: 'auth.sharedSecret',
    message: 'required while auth is enabled: set { header, value } and the same `auth_http_header` line in nginx '
      + '(or set auth.allowWithoutSecret: true to accept that any process on an allowFrom address can ask where '
      + 'mailboxes live and which users exist)',
  }];
}

/** The shared secret the example config ships with: public, so it keeps nobody out. */
export const EXAMPLE_SHARED_SECRET = 'change-me-before-production';

/**
 * What `serve` warns about at every start (and `config check` prints) without refusing: the
 * example's public shared secret lets any process on an allowFrom address ask where mailboxes
 * live. Refusing would break `npm start` for a first trial, so it is a warning, every time.
 */
export function authConfigWarnings(auth: Config['auth']): FileProblem[] {
  if (!auth.enabled || auth.sharedSecret?.value !== EXAMPLE_SHARED_SECRET) return [];
  return [{
    path: 'auth.sharedSecret.value',
    message: `is the example's public value "${EXAMPLE_SHARED_SECRET}": anyone who read the example can ask where mailboxes `
      + 'live; set a secret of your own here and in nginx\'s `auth_http_header`',
  }];
}

/** "10.0.0.0/8", "::1/128" or a bare address. null when it is neither. */
function parseCidr(entry: string): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } | null {
  const slash = entry.indexOf('/');
  const address = slash === -1 ? entry : entry.slice(0, slash);
  const v = isIP(address);
  if (v === 0) return null;
  const max = v === 4 ? 32 : 128;
  let prefix = max;
  if (slash !== -1) {
    const p = entry.slice(slash + 1);
    if (!/^[0-9]{1,3}$/.test(p)) return null;
    prefix = Number(p);
    if (prefix > max) return null;
  }
  return { address, prefix, family: v === 4 ? 'ipv4' : 'ipv6' };
}

export function isCidr(entry: string): boolean {
  return parseCidr(entry) !== null;
}

export interface AddressSet {
  has(address: string | undefined): boolean;
}

/** A set of networks. Throws a RangeError naming the bad entry (config validation catches it first). */
export function addressSet(entries: readonly string[]): AddressSet {
  const list = new BlockList();
  for (const e of entries) {
    const c = parseCidr(e);
    if (!c) throw new RangeError(`not an IP address or CIDR: ${JSON.stringify(e)}`);
    list.addSubnet(c.address, c.prefix, c.family);
  }
  const empty = entries.length === 0;
  // Few distinct addresses ask (nginx's, or clients' for the exempt list): remember answers.
  const seen = new Map<string, boolean>();
  return {
    has(address) {
      if (empty || !address) return false;
      const known = seen.get(address);
      if (known !== undefined) return known;
      const answer = check(address);
      if (seen.size >= 4096) seen.clear();
      seen.set(address, answer);
      return answer;
    },
  };

  function check(address: string): boolean {
    // A dual-stack listener reports IPv4 peers as ::ffff:a.b.c.d.
    const a = address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
    const v = isIP(a);
    if (v === 0) return false;
    return list.check(a, v === 4 ? 'ipv4' : 'ipv6');
  }
}

/** Constant-time check of the shared-secret header. */
export function secretMatches(got: string | string[] | undefined, expected: Buffer): boolean {
  if (typeof got !== 'string') return false;
  const g = Buffer.from(got, 'latin1');
  if (g.length !== expected.length) {
    timingSafeEqual(expected, expected); // same work either way
    return false;
  }
  return timingSafeEqual(g, expected);
}
