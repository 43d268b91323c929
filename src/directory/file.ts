/**
 * The directory file (issue #2): YAML or JSON, `slots` / `stores` / `users`. Used for
 * `directory apply|export` and to seed and persist the embedded backend. Parsing reports EVERY
 * problem with the file: every rule of every entry, with the entry path and the rule name; a file
 * with any problem yields no snapshot at all.
 *
 * All three sections are required, and an empty file is refused: the way to get one is
 * `directory export > layout.yaml` while the directory is down (the shell truncates the file
 * first), and applying it would delete everything. A site with no users writes `users: {}`.
 */
import { readFile } from 'node:fs/promises';
import { Document, isCollection, isMap, isPair } from 'yaml';
import { z } from 'zod';
import { DirectoryFileError, StorerouteError, type FileProblem } from '../core/errors.js';
import { zodProblems } from '../config/index.js';
import { STORE_STATES, USER_STATES, type DirectorySnapshot, type Slot, type SlotInput, type Store, type User } from './model.js';
import { checkName, enumError, epochError, slotErrors, slotFromInput, storeLayoutErrors, userNameError } from './checks.js';
import { writeFileAtomic } from './embedded/persist.js';
import { parseFileText } from './file-text.js';

// The schemas check the shape only (which keys, of which type); the values (states, ports, IPs,
// names, epochs) are the rules' business, so that every rule an entry breaks is reported.
const slotEntry = z.strictObject({
  machine: z.string(),
  ip: z.string(),
  lmtp: z.number().optional(),
  imap: z.number().optional(),
  pop3: z.number().optional(),
  state: z.string().optional(),
});

const storeEntry = z.strictObject({
  slots: z.array(z.string()),
  preferredMaster: z.string(),
  currentMaster: z.string().optional(),
  state: z.string().optional(),
  /** On apply: the lowest epoch a store created by the file starts at; kept when seeding the embedded backend. */
  epoch: z.number().optional(),
});

const userEntry = z.union([
  z.string(),
  z.strictObject({
    store: z.string(),
    state: z.string().optional(),
    movingTo: z.string().optional(),
    passwordHash: z.string().optional(),
  }),
]);

const SECTIONS = ['slots', 'stores', 'users'] as const;
/** A mapping, or absent. Not z.record: checking 100,000 keys here would cost more than the entries. */
const section = z.custom<Record<string, unknown> | null | undefined>(
  (v) => v === null || v === undefined || (typeof v === 'object' && !Array.isArray(v)),
  { message: 'expected a mapping of names to entries' }).optional();

/** The top level only; each entry is checked on its own, so one bad entry hides no other problem. */
const fileSchema = z.strictObject({
  /** Written by export and by the embedded backend; ignored by apply. */
  version: z.number().int().min(0).optional(),
  /** Written by export and by the embedded backend (see DirectorySnapshot); ignored by apply. */
  retiredEpochs: z.record(z.string(), z.number().int().min(0)).optional(),
  slots: section,
  stores: section,
  users: section,
});

function ruleMessage(err: unknown): string {
  if (err instanceof StorerouteError) {
    const ruleName = (err as { rule?: string }).rule ?? err.code;
    return `${err.message} [${ruleName}]`;
  }
  return String(err);
}

/** Parses YAML/JSON text into a complete snapshot, or throws DirectoryFileError listing every problem. */
export function parseDirectoryText(text: string, file: string): DirectorySnapshot {
  if (text.trim() === '') {
    throw new DirectoryFileError(file, [{ path: '(file)', message: 'the file is empty: a directory file has slots, stores and users sections' }]);
  }
  const read = parseFileText(text);
  if ('problems' in read) throw new DirectoryFileError(file, read.problems);
  const input = read.data;
  if (input === null || input === undefined) {
    throw new DirectoryFileError(file, [{ path: '(file)', message: 'the file holds no data (only comments?): a directory file has slots, stores and users sections' }]);
  }
  const parsed = fileSchema.safeParse(input);
  if (!parsed.success) throw new DirectoryFileError(file, zodProblems(parsed.error, input));
  const problems: FileProblem[] = [];
  for (const name of SECTIONS) {
    if (parsed.data[name] === undefined || parsed.data[name] === null) {
      problems.push({ path: name, message: `section missing: every directory file has slots, stores and users (write "${name}: {}" for none)` });
    }
  }
  const snap = buildSnapshot(parsed.data, problems);
  if (problems.length > 0) throw new DirectoryFileError(file, problems);
  return snap;
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

/** Each entry of a section checked against its own schema: the good ones, and a problem per bad field. */
function entries<T>(data: Record<string, unknown> | null | undefined, schema: z.ZodType<T>, sectionName: string,
  problems: FileProblem[]): { good: Array<[string, T]>; bad: Set<string> } {
  const good: Array<[string, T]> = [];
  const bad = new Set<string>();
  for (const [name, value] of Object.entries(data ?? {})) {
    // The short form of a user (`alice: store1`) is most of a big file: no schema call for it.
    if (typeof value === 'string' && sectionName === 'users') {
      good.push([name, value as T]);
      continue;
    }
    const r = schema.safeParse(value);
    if (r.success) good.push([name, r.data]);
    else {
      bad.add(name);
      for (const p of zodProblems(r.error, value)) {
        problems.push({ path: `${sectionName}.${name}${p.path === '(top level)' ? '' : `.${p.path}`}`, message: p.message });
      }
    }
  }
  return { good, bad };
}

function buildSnapshot(data: FileShape, problems: FileProblem[]): DirectorySnapshot {
  const snap: DirectorySnapshot = { version: data.version ?? 0, slots: {}, stores: {}, users: {} };
  if (data.retiredEpochs && Object.keys(data.retiredEpochs).length > 0) snap.retiredEpochs = { ...data.retiredEpochs };
  const report = (path: string, errs: unknown[]) => { for (const e of errs) problems.push({ path, message: ruleMessage(e) }); };

  // Slots. A slot that breaks a rule is still known by its fields to the store checks below (a
  // store with two slots on one machine is a problem even when one of them has a bad IP).
  const slots = entries(data.slots, slotEntry, 'slots', problems);
  const asListed = new Map<string, Slot>();
  for (const [name, entry] of slots.good) {
    const input = { name, ...entry } as SlotInput;
    const errs = slotErrors(input);
    report(`slots.${name}`, errs);
    if (errs.length === 0) snap.slots[name] = slotFromInput(input);
    asListed.set(name, { lmtp: 0, imap: 0, pop3: 0, state: 'up', ...input });
  }
  const lookup = (n: string) => asListed.get(n) ?? (slots.bad.has(n) ? null : undefined);

  // Stores, checked against every store listed before them (even broken ones: a slot in two
  // stores is reported on the second whatever else is wrong with the first).
  const stores = entries(data.stores, storeEntry, 'stores', problems);
  const listed: DirectorySnapshot = { version: 0, slots: {}, stores: {}, users: {} };
  for (const [name, entry] of stores.good) {
    const store = { name, slots: [...entry.slots], preferredMaster: entry.preferredMaster,
      currentMaster: entry.currentMaster ?? entry.preferredMaster, state: entry.state ?? 'active', epoch: entry.epoch ?? 0 } as Store;
    const errs: unknown[] = [];
    try {
      checkName('store', name);
    } catch (err) {
      errs.push(err);
    }
    for (const e of [enumError(`store ${name}: state`, STORE_STATES, store.state), epochError(name, store.epoch)]) if (e) errs.push(e);
    errs.push(...storeLayoutErrors(listed, store, lookup));
    report(`stores.${name}`, errs);
    listed.stores[name] = store;
    if (errs.length === 0) snap.stores[name] = store;
  }

  const known = new Set([...stores.good.map(([n]) => n), ...stores.bad]);
  let path = '';
  const problem = (message: string) => problems.push({ path, message });
  for (const [name, entry] of entries(data.users, userEntry, 'users', problems).good) {
    const e = typeof entry === 'string' ? { store: entry } : entry;
    const before = problems.length;
    path = `users.${name}`;
    const badName = userNameError(name);
    if (badName) problem(ruleMessage(badName));
    const state = (e.state ?? 'active') as User['state'];
    const badState = enumError(`user ${name}: state`, USER_STATES, state);
    if (badState) problem(ruleMessage(badState));
    const user: User = { name, store: e.store, state };
    if (!known.has(e.store)) problem(`store ${JSON.stringify(e.store)} does not exist [DIRECTORY_NOT_FOUND]`);
    if (state === 'moving') {
      if (!e.movingTo) problem('state moving needs movingTo [NOT_MOVING]');
      else if (!known.has(e.movingTo)) problem(`movingTo store ${JSON.stringify(e.movingTo)} does not exist [DIRECTORY_NOT_FOUND]`);
      else if (e.movingTo === e.store) problem('movingTo is the user\'s own store [SAME_STORE]');
      else user.movingTo = e.movingTo;
    } else if (e.movingTo !== undefined) {
      problem('movingTo is only allowed with state moving [NOT_MOVING]');
    }
    if (e.passwordHash !== undefined) {
      if (e.passwordHash.length === 0) problem('passwordHash must not be empty [INVALID_HASH]');
      user.passwordHash = e.passwordHash;
    }
    if (problems.length === before) snap.users[name] = user;
  }
  return snap;
}

/** Writes a directory file atomically (temp file, fsync, rename): a reader never finds it half written. */
export async function writeDirectoryFile(file: string, text: string): Promise<void> {
  await writeFileAtomic(file, text);
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
  const retired = snap.retiredEpochs && Object.keys(snap.retiredEpochs).length > 0
    ? { retiredEpochs: Object.fromEntries(sorted(snap.retiredEpochs)) } : {};
  return { version: snap.version, ...retired, slots, stores, users };
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
