/** A client that hangs up while the backends are still answering DATA. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { addStoreAt, startFixture, type Fixture } from './fixture.js';
import { WireClient } from './wire-client.js';
import { startRawBackend, type RawBackend } from './raw-backend.js';
import { RecordingJournal } from './recording-journal.js';
import { waitFor } from '../helpers/ports.js';

let fx: Fixture;
let cy: RawBackend;
let journal: RecordingJournal;
beforeEach(async () => {
  journal = new RecordingJournal();
  // The backend's command timeout is long: only handling the hang-up can free the session quickly.
  fx = await startFixture({ journal, lmtp: { backend: { commandTimeoutMs: 30_000 } } });
  cy = await startRawBackend({ holdData: true });
  await addStoreAt(fx, cy.port, 'cy', ['zed']);
});
afterEach(async () => { await cy.close(); await fx.close(); });

async function poolSessions(slot: string): Promise<number> {
  const text = await fx.registry.metrics();
  let n = 0;
  for (const m of text.matchAll(/^storeroute_lmtp_backend_pool_sessions\{slot="([^"]+)",state="\w+"\} (\d+)$/gm)) {
    if (m[1] === slot) n += Number(m[2]);
  }
  return n;
}

describe('client gone before the backend answered DATA', () => {
  it('aborts the journal entry, closes the backend session without writing into its DATA, and frees the pool slot', async () => {
    const { client: c } = await WireClient.open(fx.port);
    await c.cmd('LHLO postfix.test');
    c.write('MAIL FROM:<s@x.org>\r\nRCPT TO:<zed@example.com>\r\nDATA\r\n');
    expect(await c.replies(3)).toEqual(['250 2.1.0 Accepted', '250 2.1.5 Accepted', '354 End data with <CR><LF>.<CR><LF>']);
    c.write('Subject: x\r\n\r\npartial');
    await waitFor(() => cy.connections[0]?.lines.includes('DATA'), 5_000, 'DATA at the backend');
    expect(await poolSessions('cym')).toBe(1);
    c.close();
    await waitFor(() => journal.entries[0]?.aborted, 3_000, 'journal entry aborted');
    await waitFor(() => cy.open() === 0, 3_000, 'backend session closed');
    await waitFor(async () => (await poolSessions('cym')) === 0, 3_000, 'pool slot free');
    const lines = cy.connections[0]!.lines;
    expect(lines.slice(lines.indexOf('DATA'))).toEqual(['DATA']); // no RSET (or anything) written into the message
    expect(journal.entries[0]?.committed).toBeUndefined();
    expect(cy.messages).toEqual([]);

    // The slot serves the next delivery at once, on a new session.
    cy.release354();
    const { client: c2 } = await WireClient.open(fx.port);
    await c2.cmd('LHLO postfix.test');
    expect((await c2.send('s@x.org', ['zed@example.com'], Buffer.from('Subject: y\r\n\r\nwhole\r\n'))).finals)
      .toEqual(['250 2.1.5 Ok SESSIONID=<raw>']);
    c2.close();
    expect(cy.connections).toHaveLength(2);
  });
});
