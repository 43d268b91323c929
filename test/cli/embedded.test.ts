import { describe, it, expect, beforeEach } from 'vitest';
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { cli, embeddedSite, fixture } from './harness.js';

describe('storeroute CLI on the embedded directory (in-process)', () => {
  let site: ReturnType<typeof embeddedSite>;
  const run = (...args: string[]) => cli(['--config', site.config, '--actor', 'test:ops', ...args]);

  beforeEach(async () => {
    site = embeddedSite();
    const applied = await run('directory', 'apply', fixture('two-stores.yaml'));
    expect(applied.stderr).toBe('');
    expect(applied.code).toBe(0);
  });

  it('apply shows what it creates, then lists stores and slots as aligned tables', async () => {
    const again = embeddedSite();
    const r = await cli(['--config', again.config, 'directory', 'apply', fixture('two-stores.yaml')]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/: 10 change\(s\) against directory version 0\n/);
    expect(r.stdout).toContain('\n  create slot slot201: machine imap2 ip 127.0.2.1 lmtp 2424 imap 1143 pop3 110 state up\n');
    expect(r.stdout).toContain('\n  create store store1: slots slot101,slot201 preferredMaster slot101 currentMaster slot101\n');
    expect(r.stdout).toContain('\n  create user alice on store store1 state active\n');
    expect(r.stdout).toMatch(/\napplied 10 change\(s\): version 0 → 10\n$/);

    const stores = await run('store', 'list');
    expect(stores.code).toBe(0);
    expect(stores.stdout.split('\n').slice(0, 3)).toEqual([
      'STORE   STATE   MASTER   PREFERRED  REPLICAS         EPOCH  BACKWARDS  USERS',
      'store1  active  slot101  slot101    slot201          0      no         2',
      'store2  active  slot202  slot202    slot102,slot301  0      no         1',
    ]);
    const slots = await run('slot', 'list');
    expect(slots.stdout).toContain('slot201  imap2    127.0.2.1  2424  1143  110   up     store1  replica');
  });

  it('apply --dry-run shows the difference and changes nothing', async () => {
    const changed = readFileSync(fixture('two-stores.yaml'), 'utf8').replace('alice: store1', 'alice: store2');
    const file = join(site.dir, 'changed.yaml');
    writeFileSync(file, changed);
    const dry = await run('directory', 'apply', '--dry-run', file);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toBe(`${file}: 2 change(s) against directory version 10\n`
      + '  begin moving user alice to store store2\n  finish moving user alice\ndry run: nothing applied\n');
    expect((await run('user', 'show', 'alice', '--json')).stdout).toContain('"store": "store1"');

    const dryJson = JSON.parse((await run('directory', 'apply', '--dry-run', '--json', file)).stdout);
    expect(dryJson).toEqual({ file, dryRun: true, fromVersion: 10, toVersion: 10, applied: 0,
      changes: ['begin moving user alice to store store2', 'finish moving user alice'],
      deletions: { users: 0, stores: 0, slots: 0 } });

    const real = await run('directory', 'apply', file);
    expect(real.code).toBe(0);
    expect(JSON.parse((await run('user', 'show', 'alice', '--json')).stdout).user.store).toBe('store2');
  });

  it('export round-trips: applying the exported file is a no-op', async () => {
    await run('store', 'failover', 'store1');
    const exported = await run('directory', 'export');
    expect(exported.code).toBe(0);
    const file = join(site.dir, 'exported.yaml');
    writeFileSync(file, exported.stdout);
    const before = JSON.parse((await run('status', '--json')).stdout).version;
    const reapply = await run('directory', 'apply', file);
    expect(reapply.code).toBe(0);
    expect(reapply.stdout).toMatch(/no changes/);
    expect(JSON.parse((await run('status', '--json')).stdout).version).toBe(before);

    const json = await run('directory', 'export', '--format', 'json');
    const doc = JSON.parse(json.stdout);
    expect(doc.stores.store1).toMatchObject({ currentMaster: 'slot201', preferredMaster: 'slot101', epoch: 1 });
    expect(doc.users.alice).toBe('store1');
  });

  it('a directory file with several mistakes reports all of them, exits 2 and applies nothing', async () => {
    const before = (await run('directory', 'export', '--format', 'json')).stdout;
    const r = await run('directory', 'apply', fixture('several-mistakes.yaml'));
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('several-mistakes.yaml');
    for (const path of ['slots.slot201', 'stores.store1', 'stores.store3', 'users.dave']) expect(r.stderr).toContain(path);
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    expect((await run('directory', 'export', '--format', 'json')).stdout).toBe(before);

    const shape = await run('directory', 'apply', fixture('unknown-keys.yaml'));
    expect(shape.code).toBe(2);
    expect(shape.stderr).toContain('slots.slot101.colour');
    expect(shape.stderr).toContain('slots.slot201.lmtp');
  });

  it('refuses an empty file and a file without users:, exit 2, naming what is missing; nothing changes (issue 11)', async () => {
    const before = (await run('directory', 'export', '--format', 'json')).stdout;
    const empty = join(site.dir, 'empty.yaml');
    writeFileSync(empty, '');
    const r = await run('directory', 'apply', '--prune', '--force', empty);
    expect(r).toMatchObject({ code: 2, stdout: '' });
    expect(r.stderr).toBe(`error: ${empty}: 1 problem(s)\n  (file): the file is empty: a directory file has slots, stores and users sections\n`);
    const noUsers = join(site.dir, 'no-users.yaml');
    writeFileSync(noUsers, readFileSync(fixture('two-stores.yaml'), 'utf8').replace(/^users:[\s\S]*$/m, ''));
    const r2 = await run('directory', 'apply', '--prune', '--force', noUsers);
    expect(r2.code).toBe(2);
    expect(r2.stderr).toContain('  users: section missing: every directory file has slots, stores and users (write "users: {}" for none)\n');
    expect((await run('directory', 'export', '--format', 'json')).stdout).toBe(before);
  });

  it('shows deletions in the plan and needs --prune for them, and --force to delete more than --max-delete of the users', async () => {
    const before = (await run('directory', 'export', '--format', 'json')).stdout;
    const file = join(site.dir, 'fewer.yaml');
    writeFileSync(file, readFileSync(fixture('two-stores.yaml'), 'utf8').replace(/^ {2}bob: .*\n/m, ''));
    const refused = await run('directory', 'apply', file);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toBe(`${file}: 1 change(s) against directory version 10\n  delete user bob\n`
      + 'deletes 1 user(s), 0 store(s), 0 slot(s) (needs --prune)\n');
    expect(refused.stderr).toMatch(/^refused \[PRUNE_REQUIRED\]: .*fewer\.yaml does not list 1 user\(s\).*--prune/);
    const dry = await run('directory', 'apply', '--dry-run', file);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain('deletes 1 user(s), 0 store(s), 0 slot(s) (needs --prune)\ndry run: nothing applied\n');

    // 1 of 3 users is 33%: more than the default 10%.
    const tooMany = await run('directory', 'apply', '--prune', file);
    expect(tooMany.code).toBe(1);
    expect(tooMany.stderr).toMatch(/^refused \[TOO_MANY_DELETIONS\]: .* deletes 1 of 3 users \(33\.3%\), more than the 10\.0% .*--force/);
    expect((await run('directory', 'export', '--format', 'json')).stdout).toBe(before);
    expect((await run('directory', 'apply', '--prune', '--max-delete', '34', file)).code).toBe(0);
    expect((await run('user', 'show', 'bob')).code).toBe(1);

    writeFileSync(file, 'slots: {}\nstores: {}\nusers: {}\n');
    expect((await run('directory', 'apply', '--prune', file)).code).toBe(1);
    const all = await run('directory', 'apply', '--prune', '--force', file);
    expect(all.code).toBe(0);
    expect(all.stdout).toContain('deletes 2 user(s), 2 store(s), 5 slot(s)\n');
    expect(JSON.parse((await run('status', '--json')).stdout).version).toBe(11 + 9);
  });

  it('export -o writes the file atomically, and leaves it as it was when the directory cannot be read', async () => {
    const out = join(site.dir, 'layout.yaml');
    const r = await run('directory', 'export', '-o', out);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(r.stdout).toBe(`wrote ${out}: directory version 10, 5 slot(s), 2 store(s), 3 user(s)\n`);
    const reapply = await run('directory', 'apply', out);
    expect(reapply.stdout).toMatch(/^no changes/);
    // A config whose directory file is gone: nothing to read, and the old export stays whole.
    const exported = readFileSync(out, 'utf8');
    const other = embeddedSite();
    const failed = await cli(['--config', other.config, 'directory', 'export', '-o', out]);
    expect(failed.code).toBe(2);
    expect(readFileSync(out, 'utf8')).toBe(exported);
  });

  it('failover with a stale --expect-epoch is a conflict (exit 1) and changes nothing', async () => {
    const ok = await run('store', 'failover', 'store1', '--expect-epoch', '0');
    expect(ok).toMatchObject({ code: 0, stderr: '' });
    expect(ok.stdout).toBe('store1: current master slot101 → slot201, epoch 0 → 1 (running backwards: preferred master is slot101)\n');

    const stale = await run('store', 'failover', 'store1', '--to', 'slot101', '--expect-epoch', '0');
    expect(stale.code).toBe(1);
    expect(stale.stdout).toBe('');
    expect(stale.stderr).toMatch(/^conflict: /);
    const store = JSON.parse((await run('store', 'show', 'store1', '--json')).stdout);
    expect(store.store).toMatchObject({ currentMaster: 'slot201', epoch: 1 });
    expect(store.runningBackwards).toBe(true);
  });

  it('failover to a down slot is refused with its rule unless forced', async () => {
    expect((await run('slot', 'set-state', 'slot201', 'down')).stdout).toBe('slot201: state up → down\n');
    const refused = await run('store', 'failover', 'store1');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^refused \[[A-Z_]+\]: /);
    const forced = await run('store', 'failover', 'store1', '--to', 'slot201', '--force', '--json');
    expect(forced.code).toBe(0);
    expect(JSON.parse(forced.stdout)).toMatchObject({ name: 'store1', currentMaster: 'slot201', epoch: 1 });
  });

  it('status lists stores running backwards, slots not up, stores not active and masters per machine', async () => {
    await run('store', 'failover', 'store1');
    await run('slot', 'set-state', 'slot101', 'maintenance');
    await run('store', 'set-state', 'store2', 'down');
    const r = await run('status');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Stores running backwards (1):\n  STORE   PREFERRED  CURRENT  EPOCH\n  store1  slot101    slot201  1\n');
    expect(r.stdout).toContain('Stores not active (1):\n  STORE   STATE\n  store2  down\n');
    expect(r.stdout).toContain('Slots not up (1):\n  SLOT     MACHINE  STATE        STORE   ROLE\n  slot101  imap1    maintenance  store1  replica\n');
    expect(r.stdout).toContain('Masters per machine (3):\n  MACHINE  MASTERS\n  imap1    0\n  imap2    2\n  imap3    0\n');

    const json = JSON.parse((await run('status', '--json')).stdout);
    expect(json.mastersPerMachine).toEqual({ imap1: 0, imap2: 2, imap3: 0 });
    expect(json.runningBackwards).toEqual([{ store: 'store1', preferredMaster: 'slot101', currentMaster: 'slot201', epoch: 1 }]);
  });

  it('history shows who did what, newest first, limited by --limit', async () => {
    await run('slot', 'set-state', 'slot301', 'down');
    await cli(['--config', site.config, '--actor', 'someone-else', 'store', 'failover', 'store1']);
    const r = await run('history', '--limit', '2');
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/^VERSION\s+AT\s+ACTOR\s+ACTION\s+TARGET\s+CHANGE$/);
    expect(lines[1]).toMatch(/someone-else\s+failover\s+store:store1\s+.*currentMaster slot101→slot201/);
    expect(lines[2]).toMatch(/test:ops\s+setSlotState\s+slot:slot301\s+state up→down/);
    const json = JSON.parse((await run('history', '--json', '--limit', '1')).stdout);
    expect(json).toHaveLength(1);
    expect(json[0]).toMatchObject({ actor: 'someone-else', action: 'failover', target: 'store:store1' });
  });

  it('user move (begin+finish), phases, set-state and set-password from stdin', async () => {
    expect((await run('user', 'move', 'alice', 'store2')).stdout).toBe('alice: store store1 (active) → store2 (active)\n');
    expect((await run('user', 'move', 'bob', 'store2', '--begin')).stdout).toBe('bob: store store1 (active) → store1 (moving), moving to store2\n');
    const wrong = await run('user', 'move', 'bob', 'store9', '--finish');
    expect(wrong.code).toBe(2);
    expect((await run('user', 'move', 'bob', '--abort')).stdout).toBe('bob: store store1 (moving) → store1 (active)\n');
    expect((await run('user', 'move', 'bob')).code).toBe(2);
    expect((await run('user', 'move', 'bob', 'store2', '--begin', '--finish')).code).toBe(2);
    expect((await run('user', 'set-state', 'carol', 'suspended')).stdout).toBe('carol: state active → suspended\n');

    const pw = await cli(['--config', site.config, 'user', 'set-password', 'carol'], { stdin: 'correct horse\n' });
    expect(pw).toMatchObject({ code: 0, stdout: 'carol: password set\n' });
    const shown = await run('user', 'show', 'carol', '--json');
    const parsed = JSON.parse(shown.stdout);
    expect(parsed.user).toMatchObject({ name: 'carol', state: 'suspended', hasPassword: true });
    expect(shown.stdout).not.toContain('scrypt');
    expect((await run('history', '--json', '--limit', '1')).stdout).not.toContain('scrypt$');
    expect((await run('user', 'show', 'carol')).stdout).toMatch(/^password:\s+set$/m);

    const empty = await cli(['--config', site.config, 'user', 'set-password', 'carol'], { stdin: '\n' });
    expect(empty.code).toBe(2);
  });

  it('unknown entries exit 1, bad arguments exit 2, neither prints a stack trace', async () => {
    const missing = await run('store', 'show', 'nope');
    expect(missing).toMatchObject({ code: 1, stdout: '' });
    expect(missing.stderr).toBe('not found: store "nope" does not exist\n');
    const badState = await run('slot', 'set-state', 'slot101', 'sideways');
    expect(badState.code).toBe(2);
    expect(badState.stderr).toContain('sideways');
    const badEpoch = await run('store', 'failover', 'store1', '--expect-epoch', 'soon');
    expect(badEpoch.code).toBe(2);
    expect(badEpoch.stderr).toContain('expected a non-negative integer, got "soon"');
    const unknown = await run('stor', 'list');
    expect(unknown.code).toBe(2);
    for (const r of [missing, badState, badEpoch, unknown]) expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('--json outputs of every read command parse', async () => {
    for (const args of [['store', 'list'], ['store', 'show', 'store2'], ['slot', 'list'], ['slot', 'show', 'slot101'],
      ['user', 'show', 'alice'], ['status'], ['history'], ['config', 'print']]) {
      const r = await run(...args, '--json');
      expect(r.code, args.join(' ')).toBe(0);
      expect(() => JSON.parse(r.stdout), args.join(' ')).not.toThrow();
    }
    expect(JSON.parse((await run('slot', 'show', 'slot202', '--json')).stdout)).toMatchObject({ store: 'store2', role: 'master' });
  });

  it('uses $STOREROUTE_CONFIG when --config is absent', async () => {
    const r = await cli(['store', 'list', '--json'], { env: { STOREROUTE_CONFIG: site.config } });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).map((s: { name: string }) => s.name)).toEqual(['store1', 'store2']);
    expect(existsSync(site.file)).toBe(true);
  });
});
