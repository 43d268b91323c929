import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { parseDirectoryText } from '../../src/directory/index.js';

describe('config/directory.example.yaml', () => {
  it('is a valid directory: 2 machines, 4 slots, 2 stores, users on both', async () => {
    const snap = parseDirectoryText(await readFile('config/directory.example.yaml', 'utf8'), 'config/directory.example.yaml');
    expect(new Set(Object.values(snap.slots).map((s) => s.machine))).toEqual(new Set(['imap1', 'imap2']));
    expect(Object.keys(snap.slots)).toHaveLength(4);
    expect(Object.keys(snap.stores)).toHaveLength(2);
    expect(snap.users['bob@example.com']?.store).toBe('store2');
    expect(snap.stores.store2?.currentMaster).toBe('slot202');
  });
});
