import { timingSafeEqual, createHash } from 'node:crypto';

/**
 * Bearer-token check in constant time. Both sides are hashed first so that the comparison does
 * not leak the token's length either (timingSafeEqual needs equal lengths).
 */
export function bearerMatches(header: string | undefined, token: string): boolean {
  if (!header) return false;
  const m = /^Bearer\s+(.+)$/i.exec(header.trim());
  if (!m || !m[1]) return false;
  const a = createHash('sha256').update(m[1]).digest();
  const b = createHash('sha256').update(token).digest();
  return timingSafeEqual(a, b);
}
