/**
 * The directory file (issue #2): YAML or JSON, `slots` / `stores` / `users`. Used for
 * `directory apply|export` and to seed the embedded backend. Parsing reports EVERY problem with
 * the file, the entry path and the rule; a file with any problem yields no snapshot at all.
 */
import { readFile } from 'node:fs/promises';
import { Document, isCollection, isMap, isPair, parseDocument } from 'yaml';
import { z } from 'zod';
import { DirectoryFileError, StorerouteError, type FileProblem } from '../core/errors.js';
import { zodProblems } from '../config/index.js';
import { SLOT_STATES, STORE_STATES, USER_STATES, type DirectorySnapshot, type Store, type User } from './model.js';
import { checkUserName, planMutation, slotFromInput } from './rules.js';

const slotEntry = z.strictObject({
  machine: z.string(),
  ip: z.string(),
  lmtp: z.number().int().optional(),
  imap: z.number().int().optional(),
  pop3: z.number().int().optional(),
  state: z.enum(SLOT_STATES).optional(),
});

const storeEntry = z.strictObject({
  slots: z.array(z.string()),
  preferredMaster: z.string(),
  currentMaster: z.string().optional(),
  state: z.enum(STORE_STATES).optional(),
  /** Informational on apply (only failovers change it); kept when seeding the embedded backend. */
  epoch: z.number().int().min(0).optional(),
});

const userEntry = z.union([
  z.string(),
  z.strictObject({
    store: z.string(),
    state: z.enum(USER_STATES).optional(),
    movingTo: z.string().optional(),
    passwordHash: z.string().optional(),
  }),
]);

const fileSchema = z.strictObject({
  /** Written by export and by the embedded backend; ignored by apply. */
  version: z.number().int().min(0).optional(),
  slots: z.record(z.string(), slotEntry).nullish(),
  stores: z.record(z.string(), storeEntry).nullish(),
  users: z.record(z.string(), userEntry).nullish(),
});

function ruleMessage(err: unknown): string {
  if (err instanceof StorerouteError) {
    const ruleName = (err as { rule?: string }).rule ?? err.code;
    return `${err.message} [${ruleName}]`;
  }
  return String(err);
}

/** Parses YAML/JSON text into a complete snapshot (version 0), or throws DirectoryFileError. */
export function parseDirectoryText(text: string, file: string): DirectorySnapshot {
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: true });
  if (doc.errors.length > 0) {
    throw new DirectoryFileError(file, doc.errors.map((e) => ({ path: '(syntax)', message: e.message.split('\n')[0] ?? e.message })));
  }
  const input: unknown = doc.toJS() ?? {};
  const parsed = fileSchema.safeParse(input);
  if (!parsed.success) throw new DirectoryFileError(file, zodProblems(parsed.error, input));
  return buildSnapshot(parsed.data, file);
}

export async function readDirectoryFile(file: string): Promise<DirectorySnapshot> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new DirectoryFileError(file, [{ path: '(file)', message: `cannot read: ${(err as Error).message}` }]);
  }
  return parseDirectoryText(text, file);
}

type FileShape = z.infer<typeof fileSchema>;

function buildSnapshot(data: FileShape, file: string): DirectorySnapshot {
  const problems: FileProblem[] = [];
  const snap: DirectorySnapshot = { version: data.version ?? 0, slots: {}, stores: {}, users: {} };
  const badSlots = new Set<string>();

  for (const [name, entry] of Object.entries(data.slots ?? {})) {
    try {
      snap.slots[name] = slotFromInput({ name, ...entry });
    } catch (err) {
      badSlots.add(name);
      problems.push({ path: `slots.${name}`, message: ruleMessage(err) });
    }
  }
  for (const [name, entry] of Object.entries(data.stores ?? {})) {
    const missing = entry.slots.filter((s) => badSlots.has(s));
    if (missing.length > 0) {
      // Already reported under slots.*; a second "does not exist" here would only be noise.
      continue;
    }
    try {
      const [change] = planMutation(snap, { op: 'createStore', input: { name, ...entry } });
      const store = change?.after as Store;
      snap.stores[name] = { ...store, epoch: entry.epoch ?? 0 };
    } catch (err) {
      problems.push({ path: `stores.${name}`, message: ruleMessage(err) });
    }
  }
  for (const [name, entry] of Object.entries(data.users ?? {})) {
    const e = typeof entry === 'string' ? { store: entry } : entry;
    const problem = (message: string) => problems.push({ path: `users.${name}`, message });
    try {
      checkUserName(name);
    } catch (err) {
      problem(ruleMessage(err));
      continue;
    }
    const state = e.state ?? 'active';
    const user: User = { name, store: e.store, state };
    if (!data.stores?.[e.store]) problem(`store ${JSON.stringify(e.store)} does not exist [DIRECTORY_NOT_FOUND]`);
    if (state === 'moving') {
      if (!e.movingTo) problem('state moving needs movingTo [NOT_MOVING]');
      else if (!data.stores?.[e.movingTo]) problem(`movingTo store ${JSON.stringify(e.movingTo)} does not exist [DIRECTORY_NOT_FOUND]`);
      else if (e.movingTo === e.store) problem(`movingTo is the user's own store [SAME_STORE]`);
      else user.movingTo = e.movingTo;
    } else if (e.movingTo !== undefined) {
      problem('movingTo is only allowed with state moving [NOT_MOVING]');
    }
    if (e.passwordHash !== undefined) {
      if (e.passwordHash.length === 0) problem('passwordHash must not be empty [INVALID_HASH]');
      user.passwordHash = e.passwordHash;
    }
    snap.users[name] = user;
  }
  if (problems.length > 0) throw new DirectoryFileError(file, problems);
  return snap;
}

/** The snapshot as a plain object in the directory file layout (the embedded backend saves this as JSON). */
export function toFileObject(snap: DirectorySnapshot): Record<string, unknown> {
  const sorted = <T>(rec: Record<string, T>) => Object.keys(rec).sort().map((k) => [k, rec[k] as T] as const);
  const slots: Record<string, unknown> = {};
  for (const [name, s] of sorted(snap.slots)) {
    slots[name] = { machine: s.machine, ip: s.ip, lmtp: s.lmtp, imap: s.imap, pop3: s.pop3, state: s.state };
  }
  const stores: Record<string, unknown> = {};
  for (const [name, s] of sorted(snap.stores)) {
    stores[name] = { slots: s.slots, preferredMaster: s.preferredMaster, currentMaster: s.currentMaster, state: s.state, epoch: s.epoch };
  }
  const users: Record<string, unknown> = {};
  for (const [name, u] of sorted(snap.users)) {
    if (u.state === 'active' && !u.passwordHash && !u.movingTo) users[name] = u.store;
    else {
      const e: Record<string, unknown> = { store: u.store, state: u.state };
      if (u.movingTo) e.movingTo = u.movingTo;
      if (u.passwordHash) e.passwordHash = u.passwordHash;
      users[name] = e;
    }
  }
  return { version: snap.version, slots, stores, users };
}

/** The snapshot as a directory file (YAML). `parseDirectoryText(exportDirectory(s))` deep-equals `s`. */
export function exportDirectory(snap: DirectorySnapshot): string {
  const header = `# storeroute directory, exported ${new Date().toISOString()}\n`;
  const doc = new Document(toFileObject(snap));
  // One line per entry, as operators write it (`slot101: { machine: imap1, ip: … }`).
  if (isMap(doc.contents)) {
    for (const section of doc.contents.items) {
      if (!isPair(section) || !isMap(section.value)) continue;
      for (const entry of section.value.items) {
        if (isPair(entry) && isCollection(entry.value)) entry.value.flow = true;
      }
    }
  }
  return header + doc.toString({ lineWidth: 0, flowCollectionPadding: true });
}
