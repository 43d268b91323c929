/**
 * The client half of commit.lua: a change set (every mutation of one `directory apply`, already
 * checked against the snapshot at version `from`) becomes one script call that makes it visible
 * at once. Redis runs one script at a time and every lookup waits behind it, so the script must
 * stay short however big the apply:
 *
 * - a table with at most `patchLimit` changed entries is patched by the script (about 1 µs of
 *   Redis time per entry);
 * - a bigger one is written whole beforehand under staging keys, `CHUNK` entries per MULTI
 *   (HSET + PEXPIRE), lookups running in between, and the script swaps it in by RENAME;
 * - the audit history likewise: inline records, or the complete new list staged and swapped.
 *
 * Readers never see staging keys, and the script refuses (SR_CONFLICT) if anything changed the
 * directory since `from`, so nothing staged is ever swapped over a newer state.
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { DirectorySnapshot } from '../model.js';
import type { ChangeSet } from '../changeset.js';
import type { DirectoryKeys } from '../../core/redis-keys.js';
import type { DirectoryScripts } from './scripts.js';

/** Changed entries of one table above which it is staged and swapped rather than patched. */
export const PATCH_LIMIT = 2_000;
/** Entries per staging command: ~0.5 ms of Redis time each. */
const CHUNK = 1_000;
/** Staged tables vanish by themselves this long after their last chunk, if the apply dies. */
const STAGE_TTL_MS = 10 * 60_000;

export interface CommitTarget {
  client: Redis;
  scripts: DirectoryScripts;
  keys: DirectoryKeys;
  historyMax: number;
  patchLimit?: number;
}

async function execOk(multi: ReturnType<Redis['multi']>): Promise<void> {
  const res = await multi.exec();
  if (!res) throw new Error('staging transaction aborted');
  const failed = res.find(([e]) => e);
  if (failed) throw failed[0];
}

async function stageHash(client: Redis, key: string, entries: Array<[string, unknown]>): Promise<void> {
  for (let i = 0; i < entries.length; i += CHUNK) {
    const flat: string[] = [];
    for (const [name, value] of entries.slice(i, i + CHUNK)) flat.push(name, JSON.stringify(value));
    await execOk(client.multi().hset(key, ...flat).pexpire(key, STAGE_TTL_MS));
  }
}

async function stageList(client: Redis, key: string, items: string[]): Promise<void> {
  for (let i = 0; i < items.length; i += CHUNK) {
    await execOk(client.multi().rpush(key, ...items.slice(i, i + CHUNK)).pexpire(key, STAGE_TTL_MS));
  }
}

/** The audit record as the mutation scripts store it (`at` in ms since the epoch). */
function recordJson(r: ChangeSet['records'][number]): string {
  return JSON.stringify({ ...r, at: Date.parse(r.at) });
}

/** Users on each store or moving to it: the userCount hash, rebuilt whole from the final state. */
function userCounts(snap: DirectorySnapshot): Map<string, number> {
  const counts = new Map<string, number>();
  for (const u of Object.values(snap.users)) {
    counts.set(u.store, (counts.get(u.store) ?? 0) + 1);
    if (u.movingTo) counts.set(u.movingTo, (counts.get(u.movingTo) ?? 0) + 1);
  }
  return counts;
}

/** Commits `set` (built on `base`); returns the new version. Throws the raw Redis error (the caller maps it). */
export async function commitChangeSet(t: CommitTarget, set: ChangeSet, base: DirectorySnapshot, channel: string): Promise<number> {
  const limit = t.patchLimit ?? PATCH_LIMIT;
  const token = randomBytes(8).toString('hex');
  const staged = t.keys.staging(token);
  const replace: Record<string, number> = {};
  const n: Record<string, number> = {};
  const args: string[] = [];
  const section = (name: string, items: string[], width: number) => {
    n[name] = items.length / width;
    for (const item of items) args.push(item);
  };
  try {
    for (const [table, kind] of [['slots', 'slot'], ['stores', 'store'], ['users', 'user']] as const) {
      const names = set.changed[kind];
      const rows = set.next[table] as Record<string, unknown>;
      const items: string[] = [];
      if (names.size > limit) {
        const entries = Object.entries(rows);
        await stageHash(t.client, staged[table], entries);
        replace[table] = entries.length;
      } else {
        for (const name of names) items.push(name, rows[name] === undefined ? '' : JSON.stringify(rows[name]));
      }
      section(table, items, 2);
    }
    const retired: string[] = [];
    const was = base.retiredEpochs ?? {};
    const now = set.next.retiredEpochs ?? {};
    for (const name of new Set([...Object.keys(was), ...Object.keys(now)])) {
      if (was[name] !== now[name]) retired.push(name, now[name] === undefined ? '' : String(now[name]));
    }
    section('retired', retired, 2);
    section('userCount', [...userCounts(set.next)].flatMap(([store, count]) => [store, String(count)]), 2);

    if (set.records.length > limit) {
      // The complete new list, newest first: the new records, then as much of the old as fits.
      const newest = set.records.slice(-t.historyMax).reverse().map(recordJson);
      const room = t.historyMax - newest.length;
      for (let i = 0; i < room; i += CHUNK) {
        const old = await t.client.lrange(t.keys.history, i, Math.min(i + CHUNK, room) - 1);
        for (const r of old) newest.push(r);
        if (old.length < CHUNK) break;
      }
      await stageList(t.client, staged.history, newest);
      replace.history = newest.length;
      section('records', [], 1);
    } else {
      section('records', set.records.map(recordJson), 1);
    }
    section('events', set.events.map((e) => JSON.stringify(e)), 1);

    const header = { from: set.fromVersion, to: set.next.version, historyMax: t.historyMax, replace, n };
    return await t.scripts.commit(t.keys.commit(token), [channel, JSON.stringify(header), ...args]);
  } finally {
    // Swapped-in keys are gone already; these are what a failed commit left behind.
    await t.client.unlink(staged.slots, staged.stores, staged.users, staged.history).catch(() => undefined);
  }
}
