/**
 * The journal behind the real LMTP proxy: what postfix hands us and a backend accepts is found in
 * the journal with the store, slot and epoch it went to, byte for byte.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { parseConfig } from '../../src/config/index.js';
import { createDirectory, type Directory } from '../../src/directory/index.js';
import { createLmtpServer, deliverMessage, type LmtpServer } from '../../src/lmtp/index.js';
import { openJournal, type Journal } from '../../src/journal/index.js';
import { formatReply } from '../../src/core/replies.js';
import { startLmtpBackend, type LmtpBackend } from '../helpers/lmtp-backend.js';
import { testLogger, testRegistry } from '../helpers/logger.js';
import { bodyOf, message, readAll, sha, tempDir } from './helpers.js';

describe('journal behind the LMTP proxy', () => {
  let t: { dir: string; cleanup: () => Promise<void> };
  let backend: LmtpBackend;
  let directory: Directory;
  let journal: Journal;
  let server: LmtpServer;
  let port: number;

  beforeEach(async () => {
    t = await tempDir('lmtp-journal');
    backend = await startLmtpBackend();
    const obs = { logger: testLogger(), metrics: testRegistry() };
    const config = parseConfig({
      directory: { embedded: { file: join(t.dir, 'directory.json') } },
      lmtp: { listen: { host: '127.0.0.1', port: 0 } },
      journal: { dir: join(t.dir, 'journal'), messageIdDomain: 'proxy.test' },
    });
    directory = await createDirectory(config.directory, obs);
    await directory.createSlot({ name: 'slotA', machine: 'mA', ip: backend.host, lmtp: backend.port }, 'test');
    await directory.createSlot({ name: 'slotB', machine: 'mB', ip: backend.host, lmtp: backend.port }, 'test');
    await directory.createStore({ name: 'store1', slots: ['slotA', 'slotB'], preferredMaster: 'slotA' }, 'test');
    await directory.createUser({ name: 'alice', store: 'store1' }, 'test');
    await directory.createUser({ name: 'bob', store: 'store1' }, 'test');
    journal = await openJournal(config.journal, obs);
    server = createLmtpServer({ config: config.lmtp, journalConfig: config.journal, directory, journal, obs });
    port = (await server.listen()).port!;
  });
  afterEach(async () => {
    await server.close(0);
    await journal.close();
    await directory.close();
    await backend.close();
    await t.cleanup();
  });

  it('records each delivered recipient with its store, slot and epoch, and the body as delivered', async () => {
    const proxy = { host: '127.0.0.1', port, slot: 'proxy' };
    const epoch0 = (await directory.getStore('store1'))!.epoch;
    const body = message('first@proxy.test', 200_000);
    const r1 = await deliverMessage(proxy, { mailFrom: 'sender@example.org', recipients: ['alice@proxy.test', 'bob@proxy.test'] }, body);
    expect(r1.rcpt.map((d) => formatReply(d))).toEqual(['250 2.1.5 Accepted', '250 2.1.5 Accepted']);
    expect(r1.data.map((d) => d && formatReply(d))).toEqual([expect.stringMatching(/^250 /), expect.stringMatching(/^250 /)]);
    const store = await directory.failover('store1', { to: 'slotB', force: true }, 'test');
    // No Message-ID: the proxy adds one, and the journal has the body as the backend got it.
    const bare = Buffer.from('Subject: no id\r\n\r\nhello\r\n');
    await deliverMessage(proxy, { mailFrom: '', recipients: ['alice@proxy.test'] }, bare);

    const records = await readAll(journal.read({ store: 'store1' }));
    expect(records).toHaveLength(2);
    const [first, second] = records as [typeof records[0], typeof records[0]];
    expect(first.recipients.map((r) => [r.user, r.store, r.slot, r.epoch])).toEqual([['alice', 'store1', 'slotA', epoch0], ['bob', 'store1', 'slotA', epoch0]]);
    expect(first.messageId).toBe('<first@proxy.test>');
    expect(first.sha256).toBe(sha(body));
    expect(sha(await bodyOf(journal, first))).toBe(sha(backend.messages[0]!.body));
    expect(store.epoch).toBe(epoch0 + 1);
    expect(second.recipients.map((r) => [r.user, r.slot, r.epoch])).toEqual([['alice', 'slotB', store.epoch]]);
    expect(second.messageId).toMatch(/@proxy\.test>$/);
    expect((await bodyOf(journal, second)).equals(backend.messages[1]!.body)).toBe(true);
  });

  it('delivers no copy while the journal cannot record: 451 for every recipient, so postfix retries make no duplicates', async () => {
    await journal.close(); // as after a disk failure: every new entry reports failed()
    const proxy = { host: '127.0.0.1', port, slot: 'proxy' };
    for (let attempt = 0; attempt < 2; attempt++) {
      const r = await deliverMessage(proxy, { mailFrom: 's@x', recipients: ['alice@proxy.test', 'bob@proxy.test'] }, message('down@x'));
      expect(r.data.map((d) => d && formatReply(d))).toEqual(Array(2).fill('451 4.3.0 Replay journal unavailable, try again later'));
    }
    expect(backend.messages).toEqual([]);
  });

  it('does not journal a recipient the backend refused', async () => {
    backend.behaviour = { rcpt: (a) => (a.startsWith('bob') ? { code: 550, text: '5.1.1 User unknown' } : 'accept') };
    await deliverMessage({ host: '127.0.0.1', port, slot: 'proxy' }, { mailFrom: 's@x', recipients: ['alice@proxy.test', 'bob@proxy.test'] }, message('r@x'));
    const records = await readAll(journal.read());
    expect(records.map((r) => r.recipients.map((x) => x.user))).toEqual([['alice']]);
  });
});
