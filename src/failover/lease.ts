/**
 * The failover lease: one runner per store at a time. It is taken atomically (an O_EXCL file next
 * to the embedded directory file; `SET NX PX` in the directory's Redis) and expires on its own, so
 * a runner that died blocks the store for at most `failover.leaseTtlMs`. Directory status
 * documents cannot serve: publishStatus is a blind overwrite, two runners would both "win".
 */
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import { link, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { failoverLeaseKey } from '../core/redis-keys.js';
import { readLuaFile, registerScript } from '../directory/index.js';

export interface LeaseHolder {
  holder: string;
  host: string;
  pid: number;
  token: string;
  expiresAt: number;
}

export interface Lease {
  readonly holder: LeaseHolder;
  release(): Promise<void>;
}

export interface LeaseStore {
  /** The lease, or who holds it now. */
  acquire(store: string, holder: string, ttlMs: number): Promise<{ lease: Lease } | { heldBy: LeaseHolder | null }>;
}

function newHolder(holder: string, ttlMs: number): LeaseHolder {
  return { holder, host: hostname(), pid: process.pid, token: randomUUID(), expiresAt: Date.now() + ttlMs };
}

function parseHolder(text: string): LeaseHolder | null {
  try {
    const v = JSON.parse(text) as Partial<LeaseHolder>;
    return typeof v.token === 'string' && typeof v.expiresAt === 'number' ? v as LeaseHolder : null;
  } catch {
    return null;
  }
}

function processGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/** Expired, or held by a process of this host that no longer exists (the runner died). */
function isDead(h: LeaseHolder | null, now: number): boolean {
  if (!h) return true;
  return h.expiresAt <= now || (h.host === hostname() && h.pid !== process.pid && processGone(h.pid));
}

const errno = (err: unknown) => (err as NodeJS.ErrnoException).code;

/** Leases as files in `dir` (the embedded directory file's folder: every runner of this directory sees them). */
export function fileLeases(dir: string): LeaseStore {
  return {
    async acquire(store, holder, ttlMs) {
      const path = join(dir, `.failover-${store}.lease`);
      for (let attempt = 0; attempt < 3; attempt++) {
        const mine = newHolder(holder, ttlMs);
        try {
          await writeFile(path, JSON.stringify(mine), { flag: 'wx', mode: 0o600 });
          return { lease: fileLease(path, mine) };
        } catch (err) {
          if (errno(err) !== 'EEXIST') throw err;
        }
        const text = await readFile(path, 'utf8').catch((err: unknown) => (errno(err) === 'ENOENT' ? null : Promise.reject(err)));
        if (text === null) continue;
        const current = parseHolder(text);
        if (!isDead(current, Date.now())) return { heldBy: current };
        // Take the dead lease away atomically; if what we moved is not the one we judged dead
        // (another runner replaced it meanwhile), put it back: it is live.
        const aside = `${path}.${mine.token}`;
        try {
          await rename(path, aside);
        } catch (err) {
          if (errno(err) === 'ENOENT') continue;
          throw err;
        }
        const moved = parseHolder(await readFile(aside, 'utf8'));
        if (moved && current && moved.token !== current.token) {
          await link(aside, path).catch(() => undefined);
          await unlink(aside);
          return { heldBy: moved };
        }
        await unlink(aside);
      }
      return { heldBy: parseHolder(await readFile(path, 'utf8').catch(() => '')) };
    },
  };
}

function fileLease(path: string, mine: LeaseHolder): Lease {
  return {
    holder: mine,
    async release() {
      const text = await readFile(path, 'utf8').catch(() => null);
      if (text !== null && parseHolder(text)?.token === mine.token) await unlink(path).catch(() => undefined);
    },
  };
}

/** The lease key, built with every other key in core/redis-keys.ts (re-exported for the tests). */
export function leaseKey(keyPrefix: string, store: string): string {
  return failoverLeaseKey(keyPrefix, store);
}

/** Registered as `sr_releaseLease_v1`; bump the version whenever release-lease.lua's contract changes. */
const RELEASE = { name: 'releaseLease', version: 1, numberOfKeys: 1 } as const;

/** Leases in the directory's Redis: `SET key holder NX PX ttl`; released by ./lua/release-lease.lua. */
export function redisLeases(redis: Redis, keyPrefix: string): LeaseStore {
  const release = registerScript(redis, { ...RELEASE, lua: readLuaFile(new URL('./lua/release-lease.lua', import.meta.url)) });
  return {
    async acquire(store, holder, ttlMs) {
      const key = leaseKey(keyPrefix, store);
      const mine = newHolder(holder, ttlMs);
      const value = JSON.stringify(mine);
      const ok = await redis.set(key, value, 'PX', ttlMs, 'NX');
      if (ok === 'OK') {
        return {
          lease: {
            holder: mine,
            async release() {
              await release(key, value);
            },
          },
        };
      }
      const now = await redis.get(key);
      return { heldBy: now === null ? null : parseHolder(now) };
    },
  };
}
