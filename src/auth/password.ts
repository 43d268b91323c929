/**
 * Password hashes for auth_http `directory` verification.
 *
 * Format (one string, stored on the user record as `passwordHash`):
 *
 *     scrypt$<N>$<r>$<p>$<salt>$<hash>
 *
 * N, r, p: decimal scrypt cost parameters (N a power of two). salt: 16 random bytes, hash: 32
 * bytes, both standard base64 with padding. The password is hashed as its UTF-8 bytes, which is
 * what nginx sends (it passes the client's bytes through, %-escaping only space, `%` and controls).
 *
 * Parameters are read from the stored string, so raising the default cost later keeps old hashes
 * valid; they are bounded so a crafted record cannot make one verification eat a core or a GiB.
 */
import { randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto';

const PREFIX = 'scrypt';
const SALT_BYTES = 16;
const HASH_BYTES = 32;
/** 2^15, r 8, p 1: ~32 MiB and ~60–100 ms on a 2020s core. */
export const DEFAULT_SCRYPT = { N: 32768, r: 8, p: 1 } as const;
const MAX_N = 1 << 20;
const MAX_R = 32;
const MAX_P = 16;

export interface ScryptParams { N: number; r: number; p: number }

interface ParsedHash extends ScryptParams { salt: Buffer; hash: Buffer }

function scrypt(password: Buffer, salt: Buffer, keylen: number, params: ScryptParams): Promise<Buffer> {
  // maxmem must cover 128 * N * r * p plus slack, or node refuses large N.
  const options: ScryptOptions = { N: params.N, r: params.r, p: params.p, maxmem: 128 * params.N * params.r * (params.p + 1) + 1024 * 1024 };
  return new Promise((resolve, reject) => {
    scryptCb(password, salt, keylen, options, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

function validParams({ N, r, p }: ScryptParams): boolean {
  return Number.isInteger(N) && N >= 2 && N <= MAX_N && (N & (N - 1)) === 0
    && Number.isInteger(r) && r >= 1 && r <= MAX_R
    && Number.isInteger(p) && p >= 1 && p <= MAX_P;
}

const B64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** Parses a stored hash; null when it is not in the documented format. */
export function parsePasswordHash(stored: string): ParsedHash | null {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== PREFIX) return null;
  const [, n, r, p, salt, hash] = parts as [string, string, string, string, string, string];
  if (![n, r, p].every((x) => /^[1-9][0-9]{0,7}$/.test(x))) return null;
  const params = { N: Number(n), r: Number(r), p: Number(p) };
  if (!validParams(params) || !B64.test(salt) || !B64.test(hash)) return null;
  const saltBuf = Buffer.from(salt, 'base64');
  const hashBuf = Buffer.from(hash, 'base64');
  if (saltBuf.length < 8 || hashBuf.length < 16) return null;
  return { ...params, salt: saltBuf, hash: hashBuf };
}

export function isPasswordHash(stored: string): boolean {
  return parsePasswordHash(stored) !== null;
}

/** Hashes a password for `storeroute user set-password`. Empty passwords are refused. */
export async function hashPassword(password: string, params: ScryptParams = DEFAULT_SCRYPT): Promise<string> {
  if (password.length === 0) throw new RangeError('password must not be empty');
  if (!validParams(params)) throw new RangeError(`invalid scrypt parameters N=${params.N} r=${params.r} p=${params.p}`);
  const salt = randomBytes(SALT_BYTES);
  const hash = await scrypt(Buffer.from(password, 'utf8'), salt, HASH_BYTES, params);
  return [PREFIX, params.N, params.r, params.p, salt.toString('base64'), hash.toString('base64')].join('$');
}

/**
 * True when `password` (a string, or the raw bytes nginx sent) matches `stored`. A stored value
 * that is not a valid hash never matches (and does not throw: a bad record is a failed login).
 */
export async function verifyPassword(password: string | Buffer, stored: string): Promise<boolean> {
  const parsed = parsePasswordHash(stored);
  if (!parsed) return false;
  const pw = typeof password === 'string' ? Buffer.from(password, 'utf8') : password;
  const got = await scrypt(pw, parsed.salt, parsed.hash.length, parsed);
  return timingSafeEqual(got, parsed.hash);
}

/**
 * Spends the same work as a verification against a user that has a hash, so an unknown user
 * cannot be told from a wrong password by timing.
 */
export async function burnVerification(password: Buffer): Promise<void> {
  await scrypt(password, DUMMY_SALT, HASH_BYTES, DEFAULT_SCRYPT);
}

const DUMMY_SALT = Buffer.alloc(SALT_BYTES, 0x5a);
