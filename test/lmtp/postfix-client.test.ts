/** Postfix's own LMTP client, smtp-source -L, through the proxy. */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { startFixture, type Fixture } from './fixture.js';

const run = promisify(execFile);
let fx: Fixture | null = null;
afterEach(async () => { await fx?.close(); fx = null; });

describe('LMTP proxy with postfix smtp-source -L', () => {
  it('delivers 20 messages over 5 sessions to recipients on two stores', async () => {
    fx = await startFixture();
    // smtp-source -r 2 sends to 2x@… and x@… (a number prepended to all but the last).
    await fx.directory.createUser({ name: 'x@example.com', store: 's2' }, 'test');
    await fx.directory.createUser({ name: '2x@example.com', store: 's3' }, 'test');
    const { stdout, stderr } = await run('smtp-source', ['-L', '-A', '-s', '5', '-m', '20', '-r', '2', '-l', '2048',
      '-f', 'src@x.org', '-t', 'x@example.com', `127.0.0.1:${fx.port}`], { timeout: 15_000 });
    expect(stderr + stdout).toBe('');
    expect(fx.be.b1.messages).toHaveLength(20);
    expect(fx.be.c1.messages).toHaveLength(20);
    expect(fx.be.b1.messages.every((m) => m.recipients.join() === 'x@example.com' && m.mailFrom === 'src@x.org')).toBe(true);
    expect(fx.be.b1.messages.map((m) => m.body.length)).toEqual(fx.be.c1.messages.map((m) => m.body.length));
  });
});
