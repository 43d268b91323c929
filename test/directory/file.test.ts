import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/index.js';
import {
  applyDirectory, createDirectory, describeMutation, diffDirectory, DirectoryFileError, exportDirectory, parseDirectoryText,
  type Directory,
} from '../../src/directory/index.js';
import { testLogger, testRegistry } from '../helpers/logger.js';
import { seedLayout } from './behaviour.js';

const LAYOUT = `
slots:
  slot101: { machine: imap1, ip: 127.0.1.1, lmtp: 24, imap: 143, pop3: 110 }
  slot201: { machine: imap2, ip: 127.0.2.1 }
stores:
  store1: { slots: [slot101, slot201], preferredMaster: slot101, currentMaster: slot101 }
users:
  alice: store1
  bob: { store: store1, state: active }
`;

describe('directory file', () => {
  it('parses the documented layout', () => {
    const snap = parseDirectoryText(LAYOUT, 'layout.yaml');
    expect(snap.slots.slot201).toEqual({ name: 'slot201', machine: 'imap2', ip: '127.0.2.1', lmtp: 24, imap: 143, pop3: 110, state: 'up' });
    expect(snap.stores.store1).toMatchObject({ currentMaster: 'slot101', epoch: 0, state: 'active' });
    expect(snap.users.bob).toEqual({ name: 'bob', store: 'store1', state: 'active' });
  });

  it('parses JSON too', () => {
    const snap = parseDirectoryText(JSON.stringify({ slots: { a: { machine: 'm1', ip: '::1' }, b: { machine: 'm2', ip: '::2' } },
      stores: { s: { slots: ['a', 'b'], preferredMaster: 'b' } }, users: { u: 's' } }), 'x.json');
    expect(snap.stores.s?.currentMaster).toBe('b');
  });

  it('reports every mistake with its entry path and rule, shape and rules together', () => {
    const bad = `
slots:
  slot101: { machine: imap1, ip: 127.0.1.1 }
  slot102: { machine: imap1, ip: 127.0.1.2 }
  slot201: { machine: imap2, ip: imap2.example.com }
  slot301: { machine: imap3, ip: 127.0.3.1, colour: blue }
  slot401: { machine: imap4, ip: 127.0.4.1, lmtp: 0 }
stores:
  store1: { slots: [slot101, slot102], preferredMaster: slot101 }
  store2: { slots: [slot101, slot301], preferredMaster: slot999 }
users:
  alice: store9
  Bob: store1
`;
    const err = (() => { try { parseDirectoryText(bad, 'bad.yaml'); } catch (e) { return e; } return null; })();
    expect(err).toBeInstanceOf(DirectoryFileError);
    const e = err as DirectoryFileError;
    expect(e.file).toBe('bad.yaml');
    // A shape mistake (an unknown key) no longer hides the rule mistakes of other entries.
    expect(e.problems.map((p) => `${p.path} ${/\[([A-Z_]+)\]$/.exec(p.message)?.[1] ?? p.message}`)).toEqual([
      'slots.slot301.colour unknown key',
      'slots.slot201 INVALID_IP',
      'slots.slot401 INVALID_PORT',
      'stores.store1 SAME_MACHINE',
      'stores.store2 SLOT_IN_STORE',
      'stores.store2 MASTER_NOT_IN_STORE',
      'users.alice DIRECTORY_NOT_FOUND',
      'users.Bob INVALID_NAME',
    ]);
    expect(e.message).toContain('bad.yaml: 8 problem(s)');
  });

  it('checks every rule of every entry: a bad IP does not hide the same-machine store (issue 11 item 7)', () => {
    const text = `
slots:
  slot101: { machine: imap1, ip: 127.0.1.1 }
  slot102: { machine: imap1, ip: 127.0.1.300 }
  slot201: { machine: Bad Machine, ip: nope, pop3: 70000, state: sideways }
  slot202: { machine: imap2, ip: 127.0.2.2 }
stores:
  store1: { slots: [slot101, slot102], preferredMaster: slot101 }
  store2: { slots: [slot202, slot102, slot202], preferredMaster: slot202, currentMaster: slot999, state: broken }
users:
  Carol: { store: store3, state: moving }
`;
    const e = (() => { try { parseDirectoryText(text, 'x.yaml'); } catch (x) { return x; } return null; })() as DirectoryFileError;
    const rules = e.problems.map((p) => `${p.path} ${/\[([A-Z_]+)\]$/.exec(p.message)?.[1] ?? p.message}`);
    expect(rules).toEqual([
      'slots.slot102 INVALID_IP',
      'slots.slot201 INVALID_MACHINE', 'slots.slot201 INVALID_IP', 'slots.slot201 INVALID_PORT', 'slots.slot201 INVALID_STATE',
      'stores.store1 SAME_MACHINE',
      'stores.store2 INVALID_STATE', 'stores.store2 SLOT_IN_STORE', 'stores.store2 DUPLICATE_SLOT', 'stores.store2 MASTER_NOT_IN_STORE',
      'users.Carol INVALID_NAME', 'users.Carol DIRECTORY_NOT_FOUND', 'users.Carol NOT_MOVING',
    ]);
  });

  it('refuses an empty file and a file without slots, stores or users, naming what is missing (issue 11 item 2)', () => {
    const problems = (text: string) => {
      try {
        parseDirectoryText(text, 'layout.yaml');
      } catch (e) {
        return (e as DirectoryFileError).problems.map((p) => p.path);
      }
      return [];
    };
    expect(problems('')).toEqual(['(file)']);
    expect(problems('# only a comment\n')).toEqual(['(file)']);
    expect(problems('{}')).toEqual(['slots', 'stores', 'users']);
    expect(problems('slots: {}\nstores: {}\n')).toEqual(['users']);
    expect(problems('slots: {}\nstores:\nusers: {}\n')).toEqual(['stores']);
    expect(problems('slots: {}\nstores: {}\nusers: {}\n')).toEqual([]);
  });

  it('reports a YAML syntax error and a duplicate key', () => {
    expect(() => parseDirectoryText('slots: [', 'x.yaml')).toThrow(DirectoryFileError);
    expect(() => parseDirectoryText('users:\n  a: s\n  a: s\n', 'x.yaml')).toThrow(/x\.yaml/);
  });

  it('reads JSON with JSON.parse, still refusing a duplicate key (which JSON.parse would drop silently)', () => {
    const json = JSON.stringify({ slots: { a: { machine: 'm1', ip: '::1' }, b: { machine: 'm2', ip: '::2' } },
      stores: { s: { slots: ['a', 'b'], preferredMaster: 'b' } }, users: { u: 's', v: 's' } });
    expect(Object.keys(parseDirectoryText(json, 'x.json').users)).toEqual(['u', 'v']);
    const dup = json.replace('"v":"s"', '"u":"s"').replace('"b":{"machine"', '"a":{"machine"');
    const err = (() => { try { parseDirectoryText(dup, 'x.json'); } catch (e) { return e; } return null; })() as DirectoryFileError;
    expect(err.problems).toEqual([
      { path: '(syntax)', message: 'duplicate key slots.a' },
      { path: '(syntax)', message: 'duplicate key users.u' },
    ]);
    // Not strict JSON (a comment): the YAML parser reads it.
    expect(parseDirectoryText(`${json.slice(0, -1)} } # layout`, 'x.yaml').users.v?.store).toBe('s');
  });

  it('exports the same format, which parses back to the same directory', () => {
    const snap = parseDirectoryText(LAYOUT, 'layout.yaml');
    snap.users.bob = { name: 'bob', store: 'store1', state: 'suspended', passwordHash: 'scrypt$1$1$1$a$b' };
    snap.stores.store1 = { ...snap.stores.store1!, currentMaster: 'slot201', epoch: 3 };
    snap.version = 7;
    const text = exportDirectory(snap);
    expect(text).toContain('slot201: { machine: imap2, ip: 127.0.2.1, lmtp: 24, imap: 143, pop3: 110, state: up }');
    expect(text).toContain('alice: store1');
    expect(parseDirectoryText(text, 'export.yaml')).toEqual(snap);
  });
});

describe('directory apply', () => {
  let tmp: string;
  let dir: Directory;
  beforeEach(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'sr-apply-'));
    dir = await createDirectory(parseConfig({ directory: { embedded: { file: join(tmp, 'd.json') } } }).directory,
      { logger: testLogger(), metrics: testRegistry() });
  });
  afterEach(async () => {
    await dir.close();
    await rm(tmp, { recursive: true, force: true });
  });

  async function fileWith(text: string): Promise<string> {
    const f = join(tmp, `apply-${Math.random().toString(36).slice(2)}.yaml`);
    await writeFile(f, text);
    return f;
  }

  it('creates slots before stores before users, and a second apply finds nothing to do', async () => {
    const file = await fileWith(LAYOUT);
    const dry = await applyDirectory(dir, file, { actor: 'apply:test', dryRun: true });
    expect(dry.mutations.map(describeMutation)).toEqual([
      'create slot slot101: machine imap1 ip 127.0.1.1 lmtp 24 imap 143 pop3 110 state up',
      'create slot slot201: machine imap2 ip 127.0.2.1 lmtp 24 imap 143 pop3 110 state up',
      'create store store1: slots slot101,slot201 preferredMaster slot101 currentMaster slot101',
      'create user alice on store store1 state active',
      'create user bob on store store1 state active',
    ]);
    expect(dry.applied).toBe(0);
    expect(await dir.version()).toBe(0);
    const res = await applyDirectory(dir, file, { actor: 'apply:test' });
    expect(res).toMatchObject({ applied: 5, fromVersion: 0, toVersion: 5 });
    expect((await dir.history(1))[0]?.actor).toBe('apply:test');
    expect((await applyDirectory(dir, file, { actor: 'apply:test' })).mutations).toEqual([]);
  });

  it('deletes in reverse order: users, then stores, then slots', async () => {
    await seedLayout(dir);
    const file = await fileWith('slots: {}\nstores: {}\nusers: {}\n');
    const res = await applyDirectory(dir, file, { actor: 'apply:test', prune: true, force: true });
    const ops = res.mutations.map((m) => m.op);
    expect(ops).toEqual(['deleteUser', 'deleteUser', 'deleteStore', 'deleteStore', 'deleteSlot', 'deleteSlot', 'deleteSlot', 'deleteSlot']);
    expect(await dir.snapshot()).toMatchObject({ slots: {}, stores: {}, users: {} });
  });

  it('moves a slot from one store to another, fails over, moves a user and changes states in a valid order', async () => {
    await seedLayout(dir);
    const live = await dir.snapshot();
    const want = structuredClone(live);
    // slot201 leaves store1 for a new store3; store1 takes slot401 and must fail over to it.
    want.slots.slot401 = { name: 'slot401', machine: 'imap4', ip: '127.0.4.1', lmtp: 24, imap: 143, pop3: 110, state: 'up' };
    want.slots.slot501 = { name: 'slot501', machine: 'imap5', ip: '127.0.5.1', lmtp: 24, imap: 143, pop3: 110, state: 'down' };
    want.stores.store1 = { ...want.stores.store1!, slots: ['slot101', 'slot401'], currentMaster: 'slot401' };
    want.stores.store3 = { name: 'store3', slots: ['slot201', 'slot501'], preferredMaster: 'slot201', currentMaster: 'slot201', state: 'active', epoch: 0 };
    want.users.alice = { name: 'alice', store: 'store3', state: 'suspended' };
    const plan = diffDirectory(live, want);
    expect(plan.map((m) => m.op)).toEqual(['createSlot', 'createSlot', 'updateStore', 'failover', 'createStore',
      'beginMove', 'finishMove', 'setUserState']);
    const res = await applyDirectory(dir, want, { actor: 'apply:test' });
    expect(res.applied).toBe(8);
    const after = await dir.snapshot();
    expect(after.stores.store1).toMatchObject({ slots: ['slot101', 'slot401'], currentMaster: 'slot401', epoch: 1 });
    expect(after.users.alice).toEqual({ name: 'alice', store: 'store3', state: 'suspended' });
  });

  it('refuses a file whose result breaks a rule against the live directory, and applies nothing', async () => {
    await seedLayout(dir);
    await dir.setSlotState('slot201', 'down', 'test');
    const v = await dir.version();
    const live = await dir.snapshot();
    const want = structuredClone(live);
    want.stores.store1 = { ...want.stores.store1!, currentMaster: 'slot201' }; // target is down
    delete want.slots.slot301; // still in store2, which the file keeps
    want.users.carol = { name: 'carol', store: 'store1', state: 'active' }; // fine on its own
    const err = await applyDirectory(dir, want, { actor: 'apply:test' }).catch((e: unknown) => e) as DirectoryFileError;
    expect(err).toBeInstanceOf(DirectoryFileError);
    expect(err.problems.map((p) => p.path)).toEqual(['stores.store1', 'slots.slot301']);
    expect(err.problems[0]?.message).toContain('[TARGET_DOWN]');
    expect(err.problems[1]?.message).toContain('[SLOT_IN_STORE]');
    expect(await dir.version()).toBe(v);
    expect(await dir.getUser('carol')).toBeNull();
  });

  it('a file with several mistakes reports them all and changes nothing', async () => {
    await seedLayout(dir);
    const before = await dir.snapshot();
    const file = await fileWith(LAYOUT.replace('127.0.2.1', '999.0.0.1').replace('alice: store1', 'alice: nostore'));
    const err = await applyDirectory(dir, file, { actor: 'apply:test' }).catch((e: unknown) => e) as DirectoryFileError;
    expect(err).toBeInstanceOf(DirectoryFileError);
    expect(err.file).toBe(file);
    expect(err.problems.map((p) => p.path).sort()).toEqual(['slots.slot201', 'users.alice']);
    expect(await dir.snapshot()).toEqual(before);
  });
});
