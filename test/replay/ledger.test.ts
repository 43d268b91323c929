import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LEDGER_FILE, ReplayLedger, type LedgerEntry } from '../../src/replay/ledger.js';
import { tempDir } from '../journal/helpers.js';

let dir: string;
let cleanup: () => Promise<void>;
beforeEach(async () => ({ dir, cleanup } = await tempDir('ledger')));
afterEach(() => cleanup());

const entry = (i: number, at: Date, outcome: LedgerEntry['outcome'] = 'delivered'): LedgerEntry =>
  ({ at: at.toISOString(), actor: 'ops', store: 's', recordId: `r${i}`, address: `U${i}@x`, toSlot: 'b', outcome });

describe('replay ledger', () => {
  it('remembers settled recipients (case-insensitively) but not failed ones, and survives a torn last line', async () => {
    const l = await ReplayLedger.load(dir);
    await l.append([entry(1, new Date()), entry(2, new Date(), 'failed'), entry(3, new Date(), 'refused')]);
    await writeFile(join(dir, LEDGER_FILE), (await readFile(join(dir, LEDGER_FILE), 'utf8')) + '{"at":"20');
    const again = await ReplayLedger.load(dir);
    expect(again.settled('r1', 'u1@x')?.actor).toBe('ops');
    expect(again.settled('r2', 'U2@x')).toBeUndefined();
    expect(again.settled('r3', 'U3@x')?.outcome).toBe('refused');
  });

  it('drops entries older than a week once there are a thousand of them', async () => {
    const old = new Date(Date.now() - 8 * 24 * 3_600_000);
    const l = await ReplayLedger.load(dir);
    await l.append(Array.from({ length: 1000 }, (_, i) => entry(i, old)));
    await l.append([entry(5000, new Date())]);
    const pruned = await ReplayLedger.load(dir);
    expect(pruned.settled('r0', 'u0@x')).toBeUndefined();
    expect(pruned.settled('r5000', 'u5000@x')).toBeDefined();
    expect((await readFile(join(dir, LEDGER_FILE), 'utf8')).trim().split('\n')).toHaveLength(1);
  });
});
