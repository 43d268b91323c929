/**
 * The behaviour every Directory backend must show, run against each (embedded.test.ts,
 * redis.test.ts). One fresh, empty directory per test, from `make()`.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Directory } from '../../src/directory/index.js';
import {
  DirectoryConflictError, DirectoryNotFoundError, DirectoryRuleError, MAX_STATUS_BYTES,
} from '../../src/directory/index.js';
import type { ChangeEvent } from '../../src/directory/model.js';

export interface Made {
  dir: Directory;
  /** A second handle on the same directory (another process's view), when the backend has one. */
  other?: () => Promise<Directory>;
  cleanup(): Promise<void>;
}

/** 3 machines, 4 slots, 2 stores, 2 users. */
export async function seedLayout(dir: Directory): Promise<void> {
  await dir.createSlot({ name: 'slot101', machine: 'imap1', ip: '127.0.1.1' }, 'test');
  await dir.createSlot({ name: 'slot201', machine: 'imap2', ip: '127.0.2.1', lmtp: 2024 }, 'test');
  await dir.createSlot({ name: 'slot301', machine: 'imap3', ip: '127.0.3.1' }, 'test');
  await dir.createSlot({ name: 'slot102', machine: 'imap1', ip: '127.0.1.2' }, 'test');
  await dir.createStore({ name: 'store1', slots: ['slot101', 'slot201'], preferredMaster: 'slot101' }, 'test');
  await dir.createStore({ name: 'store2', slots: ['slot102', 'slot301'], preferredMaster: 'slot301' }, 'test');
  await dir.createUser({ name: 'alice', store: 'store1' }, 'test');
  await dir.createUser({ name: 'bob@example.com', store: 'store2' }, 'test');
}

async function rejectsRule(p: Promise<unknown>, ruleName: string): Promise<void> {
  const err = await p.then(() => null, (e: unknown) => e);
  expect(err, `expected rule ${ruleName}`).toBeInstanceOf(DirectoryRuleError);
  expect((err as DirectoryRuleError).rule).toBe(ruleName);
}

async function rejectsNotFound(p: Promise<unknown>, kind: string, entry: string): Promise<void> {
  const err = await p.then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(DirectoryNotFoundError);
  expect((err as DirectoryNotFoundError).kind).toBe(kind);
  expect((err as DirectoryNotFoundError).entry).toBe(entry);
}

export function behaviourSuite(name: string, make: () => Promise<Made>): void {
  describe(`directory behaviour: ${name}`, () => {
    let made: Made;
    let dir: Directory;
    beforeEach(async () => {
      made = await make();
      dir = made.dir;
    });
    afterEach(async () => {
      await made.cleanup();
    });

    it('resolves a user to its store and current master, with the version read', async () => {
      await seedLayout(dir);
      const route = await dir.resolve('alice');
      expect(route?.user).toEqual({ name: 'alice', store: 'store1', state: 'active' });
      expect(route?.store).toMatchObject({ name: 'store1', currentMaster: 'slot101', preferredMaster: 'slot101', epoch: 0, state: 'active' });
      expect(route?.master).toEqual({ name: 'slot101', machine: 'imap1', ip: '127.0.1.1', lmtp: 24, imap: 143, pop3: 110, state: 'up' });
      expect(route?.version).toBe(await dir.version());
      expect((await dir.resolve('BOB@Example.com'))?.master.name).toBe('slot301');
    });

    it('answers null for an unknown user, and finds the user once created', async () => {
      await seedLayout(dir);
      expect(await dir.resolve('carol')).toBeNull();
      await dir.createUser({ name: 'carol', store: 'store2' }, 'test');
      expect((await dir.resolve('carol'))?.store.name).toBe('store2');
    });

    it('bumps the version once per mutation and records who did what, newest first', async () => {
      const v0 = await dir.version();
      await dir.createSlot({ name: 'slot101', machine: 'imap1', ip: '127.0.1.1' }, 'cli:ops');
      await dir.setSlotState('slot101', 'maintenance', 'cli:ops2');
      expect(await dir.version()).toBe(v0 + 2);
      const [last, first] = await dir.history(2);
      expect(last).toMatchObject({ version: v0 + 2, actor: 'cli:ops2', action: 'setSlotState', target: 'slot:slot101' });
      expect((last?.before as { state: string }).state).toBe('up');
      expect((last?.after as { state: string }).state).toBe('maintenance');
      expect(first).toMatchObject({ version: v0 + 1, action: 'createSlot', before: null });
      expect(Number.isNaN(Date.parse(last?.at ?? ''))).toBe(false);
    });

    it('treats a repeated identical mutation as a no-op: no version bump, no audit record', async () => {
      await seedLayout(dir);
      await dir.setSlotState('slot201', 'down', 'test');
      const v = await dir.version();
      const again = await dir.setSlotState('slot201', 'down', 'test');
      expect(again.state).toBe('down');
      expect(await dir.version()).toBe(v);
      expect((await dir.history(1))[0]?.version).toBe(v);
    });

    it('notifies onChange listeners of every mutation', async () => {
      const seen: ChangeEvent[] = [];
      const off = dir.onChange((e) => seen.push(e));
      await dir.createSlot({ name: 'slot101', machine: 'imap1', ip: '127.0.1.1' }, 'test');
      await expect.poll(() => seen.length).toBe(1);
      expect(seen[0]).toEqual({ version: await dir.version(), action: 'createSlot', target: 'slot:slot101' });
      off();
    });

    describe('slots', () => {
      it('creates with default ports and state, updates, changes state, deletes', async () => {
        const s = await dir.createSlot({ name: 'slot101', machine: 'imap1', ip: '::1' }, 'test');
        expect(s).toEqual({ name: 'slot101', machine: 'imap1', ip: '::1', lmtp: 24, imap: 143, pop3: 110, state: 'up' });
        const u = await dir.updateSlot({ name: 'slot101', machine: 'imap9', ip: '127.0.9.1', lmtp: 2424 }, 'test');
        expect(u).toMatchObject({ machine: 'imap9', ip: '127.0.9.1', lmtp: 2424, state: 'up' });
        expect((await dir.setSlotState('slot101', 'down', 'test')).state).toBe('down');
        expect((await dir.getSlot('slot101'))?.state).toBe('down');
        await dir.deleteSlot('slot101', 'test');
        expect(await dir.getSlot('slot101')).toBeNull();
      });

      it('refuses bad input and changes nothing', async () => {
        const v = await dir.version();
        await rejectsRule(dir.createSlot({ name: 'slot 1', machine: 'imap1', ip: '127.0.0.1' }, 'test'), 'INVALID_NAME');
        await rejectsRule(dir.createSlot({ name: 'slot1', machine: 'imap1', ip: 'imap1.example.com' }, 'test'), 'INVALID_IP');
        await rejectsRule(dir.createSlot({ name: 'slot1', machine: 'imap1', ip: '127.0.0.1', lmtp: 70000 }, 'test'), 'INVALID_PORT');
        await rejectsRule(dir.createSlot({ name: 'slot1', machine: 'imap1', ip: '127.0.0.1', state: 'broken' as 'up' }, 'test'), 'INVALID_STATE');
        await rejectsRule(dir.createSlot({ name: 'slot1', machine: 'imap1', ip: '127.0.0.1' }, ''), 'INVALID_ACTOR');
        expect(await dir.version()).toBe(v);
        expect((await dir.snapshot()).slots).toEqual({});
      });

      it('refuses a duplicate, and unknown slots', async () => {
        await dir.createSlot({ name: 'slot101', machine: 'imap1', ip: '127.0.1.1' }, 'test');
        await rejectsRule(dir.createSlot({ name: 'slot101', machine: 'imap2', ip: '127.0.1.2' }, 'test'), 'EXISTS');
        await rejectsNotFound(dir.setSlotState('nope', 'down', 'test'), 'slot', 'nope');
        await rejectsNotFound(dir.updateSlot({ name: 'nope', machine: 'm', ip: '127.0.0.1' }, 'test'), 'slot', 'nope');
        await rejectsNotFound(dir.deleteSlot('nope', 'test'), 'slot', 'nope');
      });

      it('refuses to delete a slot still in a store', async () => {
        await seedLayout(dir);
        await rejectsRule(dir.deleteSlot('slot201', 'test'), 'SLOT_IN_STORE');
        expect(await dir.getSlot('slot201')).not.toBeNull();
      });

      it('refuses moving a store slot onto a machine another slot of the store uses', async () => {
        await seedLayout(dir);
        await rejectsRule(dir.updateSlot({ name: 'slot201', machine: 'imap1', ip: '127.0.2.1' }, 'test'), 'SAME_MACHINE');
        expect((await dir.getSlot('slot201'))?.machine).toBe('imap2');
      });
    });

    describe('stores', () => {
      it('creates with currentMaster defaulting to preferredMaster, epoch 0, state active', async () => {
        await seedLayout(dir);
        expect(await dir.getStore('store2')).toEqual({ name: 'store2', slots: ['slot102', 'slot301'],
          preferredMaster: 'slot301', currentMaster: 'slot301', state: 'active', epoch: 0 });
      });

      it('refuses a slot in two stores, two slots on one machine, masters outside the store, too few slots', async () => {
        await seedLayout(dir);
        await dir.createSlot({ name: 'slot401', machine: 'imap4', ip: '127.0.4.1' }, 'test');
        await dir.createSlot({ name: 'slot402', machine: 'imap4', ip: '127.0.4.2' }, 'test');
        const v = await dir.version();
        await rejectsRule(dir.createStore({ name: 's3', slots: ['slot401', 'slot101'], preferredMaster: 'slot401' }, 'test'), 'SLOT_IN_STORE');
        await rejectsRule(dir.createStore({ name: 's3', slots: ['slot401', 'slot402'], preferredMaster: 'slot401' }, 'test'), 'SAME_MACHINE');
        await rejectsRule(dir.createStore({ name: 's3', slots: ['slot401'], preferredMaster: 'slot401' }, 'test'), 'TOO_FEW_SLOTS');
        await rejectsRule(dir.createStore({ name: 's3', slots: ['slot401', 'slot401'], preferredMaster: 'slot401' }, 'test'), 'DUPLICATE_SLOT');
        await dir.createSlot({ name: 'slot501', machine: 'imap5', ip: '127.0.5.1' }, 'test');
        const v2 = await dir.version();
        await rejectsRule(dir.createStore({ name: 's3', slots: ['slot401', 'slot501'], preferredMaster: 'slot101' }, 'test'), 'MASTER_NOT_IN_STORE');
        await rejectsRule(dir.createStore({ name: 's3', slots: ['slot401', 'slot501'], preferredMaster: 'slot401', currentMaster: 'slot102' }, 'test'), 'MASTER_NOT_IN_STORE');
        await rejectsRule(dir.createStore({ name: 'store1', slots: ['slot401', 'slot501'], preferredMaster: 'slot401' }, 'test'), 'EXISTS');
        await rejectsNotFound(dir.createStore({ name: 's3', slots: ['slot401', 'ghost'], preferredMaster: 'slot401' }, 'test'), 'slot', 'ghost');
        expect(v2).toBe(v + 1);
        expect(await dir.version()).toBe(v2);
        expect(await dir.getStore('s3')).toBeNull();
      });

      it('updates slots and preferred master, keeping the current master; refuses dropping it', async () => {
        await seedLayout(dir);
        await dir.createSlot({ name: 'slot401', machine: 'imap4', ip: '127.0.4.1' }, 'test');
        const s = await dir.updateStore({ name: 'store1', slots: ['slot101', 'slot201', 'slot401'], preferredMaster: 'slot201' }, 'test');
        expect(s).toMatchObject({ slots: ['slot101', 'slot201', 'slot401'], preferredMaster: 'slot201', currentMaster: 'slot101', epoch: 0 });
        await rejectsRule(dir.updateStore({ name: 'store1', slots: ['slot201', 'slot401'], preferredMaster: 'slot201' }, 'test'), 'MASTER_NOT_IN_STORE');
        await rejectsRule(dir.updateStore({ name: 'store1', slots: ['slot101', 'slot201'], preferredMaster: 'slot101', currentMaster: 'slot201' }, 'test'), 'USE_FAILOVER');
        await rejectsNotFound(dir.updateStore({ name: 'nope', slots: ['slot101', 'slot201'], preferredMaster: 'slot101' }, 'test'), 'store', 'nope');
      });

      it('sets the state; refuses an unknown state', async () => {
        await seedLayout(dir);
        expect((await dir.setStoreState('store1', 'failing-over', 'test')).state).toBe('failing-over');
        await rejectsRule(dir.setStoreState('store1', 'sideways' as 'down', 'test'), 'INVALID_STATE');
        await rejectsNotFound(dir.setStoreState('nope', 'down', 'test'), 'store', 'nope');
      });

      it('refuses to delete a store that has users, deletes it once empty, then frees its slots', async () => {
        await seedLayout(dir);
        await rejectsRule(dir.deleteStore('store1', 'test'), 'STORE_HAS_USERS');
        await dir.deleteUser('alice', 'test');
        await dir.deleteStore('store1', 'test');
        expect(await dir.getStore('store1')).toBeNull();
        await dir.deleteSlot('slot101', 'test');
        await rejectsNotFound(dir.deleteStore('store1', 'test'), 'store', 'store1');
      });
    });

    describe('failover', () => {
      it('defaults to the one replica that is up, bumps the epoch, and resolve follows', async () => {
        await seedLayout(dir);
        const s = await dir.failover('store1', {}, 'test');
        expect(s).toMatchObject({ currentMaster: 'slot201', preferredMaster: 'slot101', epoch: 1 });
        const route = await dir.resolve('alice');
        expect(route?.master).toMatchObject({ name: 'slot201', lmtp: 2024 });
        expect(route?.store.epoch).toBe(1);
        expect((await dir.history(1))[0]).toMatchObject({ action: 'failover', target: 'store:store1' });
      });

      it('refuses a target that is down unless forced', async () => {
        await seedLayout(dir);
        await dir.setSlotState('slot201', 'down', 'test');
        await rejectsRule(dir.failover('store1', { to: 'slot201' }, 'test'), 'TARGET_DOWN');
        await rejectsRule(dir.failover('store1', {}, 'test'), 'NO_ELIGIBLE_TARGET');
        expect((await dir.getStore('store1'))?.currentMaster).toBe('slot101');
        expect(await dir.failover('store1', { to: 'slot201', force: true }, 'test')).toMatchObject({ currentMaster: 'slot201', epoch: 1 });
      });

      it('refuses a target outside the store, the current master itself, and an ambiguous default', async () => {
        await seedLayout(dir);
        await rejectsRule(dir.failover('store1', { to: 'slot301' }, 'test'), 'SLOT_NOT_IN_STORE');
        await rejectsRule(dir.failover('store1', { to: 'slot101' }, 'test'), 'ALREADY_MASTER');
        await dir.createSlot({ name: 'slot401', machine: 'imap4', ip: '127.0.4.1' }, 'test');
        await dir.updateStore({ name: 'store1', slots: ['slot101', 'slot201', 'slot401'], preferredMaster: 'slot101' }, 'test');
        await rejectsRule(dir.failover('store1', {}, 'test'), 'AMBIGUOUS_TARGET');
        await rejectsNotFound(dir.failover('nope', {}, 'test'), 'store', 'nope');
      });

      it('never sends an epoch backwards: a store deleted and created again starts above the old one (issue 11)', async () => {
        await seedLayout(dir);
        await dir.failover('store1', {}, 'test');
        await dir.failover('store1', {}, 'test');
        await dir.deleteUser('alice', 'test');
        await dir.deleteStore('store1', 'test');
        const again = await dir.createStore({ name: 'store1', slots: ['slot101', 'slot201'], preferredMaster: 'slot101' }, 'test');
        expect(again.epoch).toBe(3);
        for (const stale of [0, 1, 2]) {
          const err = await dir.failover('store1', { to: 'slot201', expectedEpoch: stale }, 'test').catch((e: unknown) => e);
          expect(err, `expectedEpoch ${stale} must lose`).toBeInstanceOf(DirectoryConflictError);
        }
        expect(await dir.failover('store1', { to: 'slot201', expectedEpoch: 3 }, 'test')).toMatchObject({ epoch: 4 });
        // A floor given at creation (a restore) counts too, and the higher of the two wins.
        await dir.deleteStore('store1', 'test');
        expect((await dir.createStore({ name: 'store1', slots: ['slot101', 'slot201'], preferredMaster: 'slot101', epoch: 2 }, 'test')).epoch).toBe(5);
        await dir.deleteStore('store1', 'test');
        expect((await dir.createStore({ name: 'store1', slots: ['slot101', 'slot201'], preferredMaster: 'slot101', epoch: 9 }, 'test')).epoch).toBe(9);
        await rejectsRule(dir.createStore({ name: 'store9', slots: ['slot101', 'slot201'], preferredMaster: 'slot101', epoch: -1 }, 'test'), 'INVALID_EPOCH');
        expect((await dir.snapshot()).retiredEpochs ?? {}).toEqual({});
      });

      it('compare-and-sets on expectedEpoch: a stale epoch is a conflict naming both epochs', async () => {
        await seedLayout(dir);
        await dir.failover('store1', { expectedEpoch: 0 }, 'test');
        const err = await dir.failover('store1', { to: 'slot101', expectedEpoch: 0 }, 'test').catch((e: unknown) => e);
        expect(err).toBeInstanceOf(DirectoryConflictError);
        expect(err).toMatchObject({ expected: 0, actual: 1 });
        expect(await dir.failover('store1', { to: 'slot101', expectedEpoch: 1 }, 'test')).toMatchObject({ currentMaster: 'slot101', epoch: 2 });
      });
    });

    describe('users', () => {
      it('creates lower-case canonical users; refuses duplicates, unknown stores and direct moving state', async () => {
        await seedLayout(dir);
        expect(await dir.createUser({ name: 'Carol@Example.COM', store: 'store1', state: 'suspended' }, 'test'))
          .toEqual({ name: 'carol@example.com', store: 'store1', state: 'suspended' });
        await rejectsRule(dir.createUser({ name: 'alice', store: 'store2' }, 'test'), 'EXISTS');
        await rejectsNotFound(dir.createUser({ name: 'dave', store: 'nope' }, 'test'), 'store', 'nope');
        await rejectsRule(dir.createUser({ name: 'dave', store: 'store1', state: 'moving' }, 'test'), 'USE_BEGIN_MOVE');
        await rejectsRule(dir.createUser({ name: 'da ve', store: 'store1' }, 'test'), 'INVALID_NAME');
      });

      it('sets state, deletes, and refuses unknown users', async () => {
        await seedLayout(dir);
        expect((await dir.setUserState('alice', 'suspended', 'test')).state).toBe('suspended');
        await rejectsRule(dir.setUserState('alice', 'moving', 'test'), 'USE_BEGIN_MOVE');
        await dir.deleteUser('alice', 'test');
        expect(await dir.getUser('alice')).toBeNull();
        expect(await dir.resolve('alice')).toBeNull();
        await rejectsNotFound(dir.deleteUser('alice', 'test'), 'user', 'alice');
        await rejectsNotFound(dir.setUserState('alice', 'active', 'test'), 'user', 'alice');
      });

      it('moves a user in two phases; abort returns to the old store', async () => {
        await seedLayout(dir);
        expect(await dir.beginMove('alice', 'store2', 'test')).toEqual({ name: 'alice', store: 'store1', state: 'moving', movingTo: 'store2' });
        expect((await dir.resolve('alice'))?.user.state).toBe('moving');
        await rejectsRule(dir.beginMove('alice', 'store2', 'test'), 'USER_MOVING');
        await rejectsRule(dir.setUserState('alice', 'active', 'test'), 'USER_MOVING');
        await rejectsRule(dir.deleteStore('store2', 'test'), 'STORE_HAS_USERS');
        expect(await dir.finishMove('alice', 'test')).toEqual({ name: 'alice', store: 'store2', state: 'active' });
        expect((await dir.resolve('alice'))?.master.name).toBe('slot301');
        await dir.beginMove('alice', 'store1', 'test');
        expect(await dir.abortMove('alice', 'test')).toEqual({ name: 'alice', store: 'store2', state: 'active' });
        await rejectsRule(dir.finishMove('alice', 'test'), 'NOT_MOVING');
        await rejectsRule(dir.abortMove('alice', 'test'), 'NOT_MOVING');
        await rejectsRule(dir.beginMove('alice', 'store2', 'test'), 'SAME_STORE');
        await rejectsNotFound(dir.beginMove('alice', 'nope', 'test'), 'store', 'nope');
      });

      it('sets and clears a password hash; the audit record never contains it', async () => {
        await seedLayout(dir);
        const hash = 'scrypt$16384$8$1$c2FsdA==$aGFzaA==';
        expect((await dir.setPasswordHash('alice', hash, 'test')).passwordHash).toBe(hash);
        expect((await dir.getUser('alice'))?.passwordHash).toBe(hash);
        const [rec] = await dir.history(1);
        expect(JSON.stringify(rec)).not.toContain('c2FsdA');
        expect((rec?.after as { passwordHash: string }).passwordHash).toBe('[set]');
        await rejectsRule(dir.setPasswordHash('alice', '', 'test'), 'INVALID_HASH');
        expect((await dir.setPasswordHash('alice', null, 'test')).passwordHash).toBeUndefined();
      });
    });

    it('gives a snapshot of everything at one version', async () => {
      await seedLayout(dir);
      const snap = await dir.snapshot();
      expect(snap.version).toBe(await dir.version());
      expect(Object.keys(snap.slots).sort()).toEqual(['slot101', 'slot102', 'slot201', 'slot301']);
      expect(Object.keys(snap.stores).sort()).toEqual(['store1', 'store2']);
      expect(snap.users['bob@example.com']).toEqual({ name: 'bob@example.com', store: 'store2', state: 'active' });
    });

    describe('status and events (outside the layout)', () => {
      it('keeps the last document each name published under a kind, apart from other kinds', async () => {
        await seedLayout(dir);
        const v = await dir.version();
        expect(await dir.readStatus('agent')).toEqual({});
        await dir.publishStatus('agent', 'imap1', { round: 1, slots: [] });
        await dir.publishStatus('agent', 'imap2.example.org', { round: 1, slots: [{ slot: 'slot201' }] });
        await dir.publishStatus('agent', 'imap1', { round: 2, slots: [] });
        await dir.publishStatus('other-kind', 'imap1', 'plain string');
        expect(await dir.readStatus('agent')).toEqual({
          imap1: { round: 2, slots: [] }, 'imap2.example.org': { round: 1, slots: [{ slot: 'slot201' }] },
        });
        expect(await dir.readStatus('other-kind')).toEqual({ imap1: 'plain string' });
        expect(await dir.version()).toBe(v);
        expect((await dir.history(1))[0]?.version).toBe(v);

        // Deleting one name's document leaves the others (and other kinds) alone; a second delete finds nothing.
        expect(await dir.deleteStatus('agent', 'imap1')).toBe(true);
        expect(await dir.deleteStatus('agent', 'imap1')).toBe(false);
        expect(await dir.readStatus('agent')).toEqual({ 'imap2.example.org': { round: 1, slots: [{ slot: 'slot201' }] } });
        expect(await dir.readStatus('other-kind')).toEqual({ imap1: 'plain string' });
        await rejectsRule(dir.deleteStatus('agent', '../imap2'), 'INVALID_NAME');
        expect(await dir.version()).toBe(v);
      });

      it('refuses a bad kind, a bad name, a document that is not JSON or is too large', async () => {
        const refused = async (p: Promise<unknown>, ruleName: string) => rejectsRule(p, ruleName);
        await refused(dir.publishStatus('Agent', 'imap1', {}), 'INVALID_NAME');
        await refused(dir.publishStatus('agent', '../imap1', {}), 'INVALID_NAME');
        await refused(dir.publishStatus('agent', '.hidden', {}), 'INVALID_NAME');
        await refused(dir.readStatus('a/b'), 'INVALID_NAME');
        await refused(dir.publishStatus('agent', 'imap1', undefined), 'INVALID_STATUS');
        await refused(dir.publishStatus('agent', 'imap1', { n: 1n }), 'INVALID_STATUS');
        await refused(dir.publishStatus('agent', 'imap1', 'x'.repeat(MAX_STATUS_BYTES)), 'STATUS_TOO_LARGE');
        expect(await dir.readStatus('agent')).toEqual({});
      });

      it('records an event at the current version: no bump, no change event, its detail kept as written', async () => {
        await seedLayout(dir);
        const v = await dir.version();
        const seen: ChangeEvent[] = [];
        const off = dir.onChange((e) => seen.push(e));
        const detail = { result: 'ok', detail: 'replayed and removed log-run (37 bytes)', commands: [['sync_client', '-r']], files: [], n: null };
        const record = await dir.recordEvent({ actor: 'agent:imap1', action: 'replay-orphan-file', target: 'slot:slot101', detail });
        expect(record).toMatchObject({ version: v, actor: 'agent:imap1', action: 'replay-orphan-file', target: 'slot:slot101',
          before: null, after: null, detail });
        await dir.publishStatus('agent', 'imap1', { round: 1 });
        expect(await dir.version()).toBe(v);
        const [newest] = await dir.history(1);
        expect(newest).toEqual(record);
        expect(Number.isNaN(Date.parse(newest?.at ?? ''))).toBe(false);

        // The next mutation's event is the first the feed delivers: the event and the status published none.
        await dir.setSlotState('slot201', 'down', 'test');
        await expect.poll(() => seen.length).toBe(1);
        expect(seen[0]).toMatchObject({ version: v + 1, action: 'setSlotState' });
        off();
        expect((await dir.history(3)).map((r) => [r.version, r.action])).toEqual([
          [v + 1, 'setSlotState'], [v, 'replay-orphan-file'], [v, 'createUser'],
        ]);
      });

      it('refuses a malformed event and records nothing', async () => {
        await seedLayout(dir);
        const before = await dir.history(100);
        await rejectsRule(dir.recordEvent({ actor: '', action: 'flush', target: 'slot:slot101', detail: null }), 'INVALID_ACTOR');
        await rejectsRule(dir.recordEvent({ actor: 'agent:imap1', action: '', target: 'slot:slot101', detail: null }), 'INVALID_EVENT');
        await rejectsRule(dir.recordEvent({ actor: 'agent:imap1', action: 'flush', target: 'x'.repeat(201), detail: null }), 'INVALID_EVENT');
        await rejectsRule(dir.recordEvent({ actor: 'agent:imap1', action: 'flush', target: 'slot:a', detail: { n: 1n } }), 'INVALID_EVENT');
        expect(await dir.history(100)).toEqual(before);
      });

      it('gives the topology: slots and stores at one version, no users', async () => {
        await seedLayout(dir);
        const snap = await dir.snapshot();
        expect(await dir.topology()).toEqual({ version: snap.version, slots: snap.slots, stores: snap.stores });
      });

      it('lets another handle read the status and the events', async () => {
        if (!made.other) return;
        await seedLayout(dir);
        const other = await made.other();
        try {
          await dir.publishStatus('agent', 'imap1', { round: 7 });
          await dir.recordEvent({ actor: 'agent:imap1', action: 'flush', target: 'slot:slot101', detail: 'flushed' });
          expect(await other.readStatus('agent')).toEqual({ imap1: { round: 7 } });
          expect((await other.history(1))[0]).toMatchObject({ action: 'flush', detail: 'flushed' });
          // The other handle's next change keeps the event in the history it writes.
          await other.setSlotState('slot201', 'down', 'test');
          expect((await dir.history(2)).map((r) => r.action)).toEqual(['setSlotState', 'flush']);
        } finally {
          await other.close();
        }
      });
    });

    it('lets another handle on the same directory see a mutation at once', async () => {
      if (!made.other) return;
      await seedLayout(dir);
      const other = await made.other();
      try {
        expect((await other.resolve('alice'))?.master.name).toBe('slot101');
        await dir.failover('store1', {}, 'test');
        await expect.poll(async () => (await other.resolve('alice'))?.master.name, { timeout: 2_000 }).toBe('slot201');
      } finally {
        await other.close();
      }
    });
  });
}
