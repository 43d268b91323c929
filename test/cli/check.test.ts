/**
 * `check replication` input handling, without Cyrus: everything here is refused (exit 2) before a
 * single IMAP connection is opened. The comparisons themselves run in test/e2e/check.test.ts.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { appendFileSync } from 'node:fs';
import { checkCli } from './check-harness.js';
import { cli, embeddedSite, fixture } from './harness.js';

describe('check replication: bad input is refused before anything is contacted', () => {
  let site: ReturnType<typeof embeddedSite>;
  const run = (...args: string[]) => checkCli(['--config', site.config, 'check', 'replication', ...args]);

  beforeAll(async () => {
    site = embeddedSite();
    // A password, so the refusals below are about the input, not about the missing credentials.
    appendFileSync(site.config, 'replay:\n  imap: { password: not-used, timeoutMs: 500 }\n');
    expect((await cli(['--config', site.config, 'directory', 'apply', fixture('two-stores.yaml')])).code).toBe(0);
  });

  it('an unknown store or user names it (exit 2)', async () => {
    expect(await run('--store', 'nope')).toEqual({ code: 2, stdout: '', stderr: 'error [CHECK_UNKNOWN_STORE]: store "nope" does not exist\n' });
    expect(await run('--user', 'alice', '--user', 'zed')).toEqual({ code: 2, stdout: '', stderr: 'error [CHECK_UNKNOWN_USER]: user "zed" does not exist\n' });
  });

  it('--rate 0, negative or not a number is refused by the parser (exit 2)', async () => {
    for (const rate of ['0', '-1', 'fast', '0.0']) {
      const r = await run('--all', '--rate', rate);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`option '--rate <users-per-second>' argument '${rate}' is invalid. expected a number of users per second above 0, got "${rate}"`);
    }
  });

  it('no scope, or --all with --store, is a usage error', async () => {
    expect(await run()).toMatchObject({ code: 2, stderr: 'error [CHECK_BAD_OPTION]: nothing to check: give --all, --store STORE or --user USER\n' });
    expect(await run('--all', '--store', 'store1')).toMatchObject({ code: 2, stderr: 'error: --all checks every user: do not combine it with --store or --user\n' });
    expect(await run('--all', '--deep=some')).toMatchObject({ code: 2, stderr: 'error: --deep takes no value (mailboxes quick found different) or "all", got "some"\n' });
  });

  it('--repair without agents, and --agent without agent.token, say what is missing', async () => {
    expect((await run('--all', '--repair')).stderr).toMatch(/^error \[CHECK_NOT_CONFIGURED\]: --repair asks the master's slot agent/);
    expect((await run('--all', '--agent', 'imap1=http://127.0.0.1:9'))).toMatchObject({ code: 2,
      stderr: 'error [CHECK_NOT_CONFIGURED]: --agent: agent.token is not set in the config; the agents answer only with their token\n' });
    expect((await run('--all', '--agent', 'imap1')).stderr).toBe('error: --agent: expected MACHINE=http://host:port, got "imap1"\n');
  });

  it('without replay.imap.password: says which setting to set', async () => {
    const bare = embeddedSite();
    expect((await cli(['--config', bare.config, 'directory', 'apply', fixture('two-stores.yaml')])).code).toBe(0);
    const r = await checkCli(['--config', bare.config, 'check', 'replication', '--all']);
    expect(r).toMatchObject({ code: 2, stderr: expect.stringMatching(/^error \[CHECK_NOT_CONFIGURED\]: replay\.imap\.password is not configured/) });
  });
});
