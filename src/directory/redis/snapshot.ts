/**
 * The whole Redis directory at one version, without holding Redis up. HGETALL of a 100,000-user
 * hash costs Redis ~40 ms of its one thread, and every lookup waits behind it. So a big directory
 * is read by HSCAN, 1,000 entries a call, between two reads of the version: every change bumps
 * the version (commit.lua swaps tables and sets it in one script), so an unchanged version means
 * the pieces belong together. A directory that keeps changing meanwhile is read atomically after
 * a few tries (a brief stall beats never finishing).
 */
import type { Redis } from 'ioredis';
import type { DirectorySnapshot, Slot, Store, Topology, User } from '../model.js';
import type { DirectoryKeys } from '../../core/redis-keys.js';

/** Directories with fewer entries than this are read in one MULTI (cheap at that size). */
export const SCAN_ABOVE = 5_000;
const SCAN_COUNT = 1_000;
const SCAN_ATTEMPTS = 5;

type Raw = [version: string | null, slots: Record<string, string>, stores: Record<string, string>,
  users: Record<string, string>, retired: Record<string, string>];

async function exec<T extends unknown[]>(multi: ReturnType<Redis['multi']>): Promise<T> {
  const res = await multi.exec();
  if (!res) throw new Error('transaction aborted');
  const failed = res.find(([e]) => e);
  if (failed) throw failed[0];
  return res.map(([, v]) => v) as T;
}

async function hscanAll(client: Redis, key: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  let cursor = '0';
  do {
    const [next, flat] = await client.hscan(key, cursor, 'COUNT', SCAN_COUNT);
    for (let i = 0; i < flat.length; i += 2) out[flat[i] as string] = flat[i + 1] as string;
    cursor = next;
  } while (cursor !== '0');
  return out;
}

function atomicRead(client: Redis, k: DirectoryKeys): Promise<Raw> {
  return exec<Raw>(client.multi().get(k.version).hgetall(k.slots).hgetall(k.stores).hgetall(k.users).hgetall(k.retiredEpochs));
}

async function scannedRead(client: Redis, k: DirectoryKeys): Promise<Raw | null> {
  const before = await client.get(k.version);
  const slots = await hscanAll(client, k.slots);
  const stores = await hscanAll(client, k.stores);
  const users = await hscanAll(client, k.users);
  const retired = await hscanAll(client, k.retiredEpochs);
  return (await client.get(k.version)) === before ? [before, slots, stores, users, retired] : null;
}

function build(raw: Raw): DirectorySnapshot {
  const table = <T>(rec: Record<string, string>) => {
    const out: Record<string, T> = {};
    for (const [name, json] of Object.entries(rec)) out[name] = JSON.parse(json) as T;
    return out;
  };
  const snap: DirectorySnapshot = { version: Number(raw[0] ?? 0), slots: table<Slot>(raw[1]), stores: table<Store>(raw[2]),
    users: table<User>(raw[3]) };
  const retired = Object.entries(raw[4]);
  if (retired.length > 0) snap.retiredEpochs = Object.fromEntries(retired.map(([n, e]) => [n, Number(e)]));
  return snap;
}

/** Throws the Redis error as is: the caller maps it (mapRedisError). */
export async function readSnapshot(client: Redis, k: DirectoryKeys): Promise<DirectorySnapshot> {
  const [users, slots, stores] = await exec<[number, number, number]>(client.multi().hlen(k.users).hlen(k.slots).hlen(k.stores));
  if (users + slots + stores < SCAN_ABOVE) return build(await atomicRead(client, k));
  for (let attempt = 0; attempt < SCAN_ATTEMPTS; attempt++) {
    const raw = await scannedRead(client, k);
    if (raw) return build(raw);
  }
  return build(await atomicRead(client, k));
}

/** Slots and stores at one version (one MULTI: they are hundreds, never the users' thousands). */
export async function readTopology(client: Redis, k: DirectoryKeys): Promise<Topology> {
  const [version, slots, stores] = await exec<[string | null, Record<string, string>, Record<string, string>]>(
    client.multi().get(k.version).hgetall(k.slots).hgetall(k.stores));
  const snap = build([version, slots, stores, {}, {}]);
  return { version: snap.version, slots: snap.slots, stores: snap.stores };
}
