/**
 * `storeroute agent`: its start-up refusals through the CLI harness (in-process, both backends),
 * and one real run as a child process: it publishes its report as directory status (what `status`
 * reads), records its repair in the audit history, and stops cleanly on SIGTERM.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { cli, embeddedSite, fixture, root } from './harness.js';
import { Readable } from 'node:stream';
import { AGENT_NODE_OPTIONS } from '../../src/cli/agent.js';
import { runAgentMain } from '../../src/cli/agent-main.js';
import { makeSlot, type TmpSlot } from '../agent/helpers.js';
import { startRedis, uniquePrefix, type RedisServer } from '../helpers/redis.js';
import { waitFor } from '../helpers/ports.js';

// The child-process run pays tsx's start-up (~1-2 s on a busy two-core machine).
vi.setConfig({ testTimeout: 60_000 });

const slots: TmpSlot[] = [];
afterEach(() => {
  for (const s of slots.splice(0)) s.cleanup();
});

function slot(): TmpSlot {
  const s = makeSlot();
  slots.push(s);
  return s;
}

/** A config file (JSON is YAML) in `dir` with the given directory and agent sections. */
function writeConfig(dir: string, directory: unknown, agent: unknown): string {
  const file = join(dir, 'agent.yaml');
  writeFileSync(file, JSON.stringify({ log: { level: 'silent' }, directory, agent }, null, 1));
  return file;
}

async function embeddedLayout() {
  const site = embeddedSite();
  const applied = await cli(['--config', site.config, 'directory', 'apply', fixture('two-stores.yaml')]);
  expect(applied.code).toBe(0);
  return { ...site, directory: { backend: 'embedded', embedded: { file: 'directory.json' } } };
}

describe('storeroute agent: start-up refusals (exit 2, naming what is wrong)', () => {
  it('without agent.machine or any slot, before opening anything', async () => {
    const site = await embeddedLayout();
    const r = await cli(['--config', writeConfig(site.dir, site.directory, {}), 'agent']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe('error: cannot start the agent:\n'
      + '  agent.machine is not set: the agent must know which machine it runs on (its name in the directory)\n'
      + '  agent.slots is empty: list this machine\'s slots, each with its imapd.conf\n');
  });

  it('a slot the directory does not know and one it places on another machine, both named', async () => {
    const site = await embeddedLayout();
    const s = slot();
    const config = writeConfig(site.dir, site.directory, { machine: 'imap1', listen: { port: 0 }, slots: [
      { name: 'slot101', imapdConf: s.conf }, { name: 'slot999', imapdConf: s.conf }, { name: 'slot201', imapdConf: s.conf },
    ] });
    const r = await cli(['--config', config, 'agent']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('error: cannot start the agent on machine imap1:\n'
      + '  slot slot999 (agent.slots) is not in the directory\n'
      + '  slot slot201 is on machine imap2 in the directory, but this agent is imap1 (agent.machine)\n');
    // Nothing was published or recorded.
    const status = JSON.parse((await cli(['--config', config, 'status', '--json'])).stdout);
    expect(status.agents).toEqual([]);
    expect(JSON.parse((await cli(['--config', config, 'history', '--json'])).stdout)[0].actor).not.toMatch(/^agent:/);
  });

  it('a slot placed right whose imapd.conf cannot be read', async () => {
    const site = await embeddedLayout();
    const s = slot();
    const config = writeConfig(site.dir, site.directory, { machine: 'imap1', listen: { port: 0 },
      slots: [{ name: 'slot101', imapdConf: join(s.root, 'missing.conf') }] });
    const r = await cli(['--config', config, 'agent']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^error: cannot start the agent: slot slot101: cannot read [^\n]*missing\.conf[^\n]*\n$/);
  });

  it('a missing embedded directory file is not created', async () => {
    const site = embeddedSite();
    const s = slot();
    const r = await cli(['--config', writeConfig(site.dir, { embedded: { file: 'directory.json' } },
      { machine: 'imap1', slots: [{ name: 'slot101', imapdConf: s.conf }] }), 'agent']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^error: no directory file at /);
    expect(existsSync(site.file)).toBe(false);
  });

  describe('on the Redis directory', () => {
    let redis: RedisServer;
    beforeAll(async () => { redis = await startRedis(); });
    afterAll(async () => { await redis?.close(); });

    it('refuses a slot on another machine the same way', async () => {
      const site = embeddedSite();
      const directory = { backend: 'redis', redis: { url: redis.url, keyPrefix: uniquePrefix('agent') } };
      const s = slot();
      const config = writeConfig(site.dir, directory, { machine: 'imap3', listen: { port: 0 }, slots: [{ name: 'slot201', imapdConf: s.conf }] });
      expect((await cli(['--config', config, 'directory', 'apply', fixture('two-stores.yaml')])).code).toBe(0);
      const r = await cli(['--config', config, 'agent']);
      expect(r.code).toBe(2);
      expect(r.stderr).toBe('error: cannot start the agent on machine imap3:\n'
        + '  slot slot201 is on machine imap2 in the directory, but this agent is imap3 (agent.machine)\n');
    });
  });
});

describe('storeroute agent forget', () => {
  it('removes a decommissioned machine\'s report (audited); refuses an unknown machine, one still in the layout, or a running agent', async () => {
    const site = await embeddedLayout();
    const config = writeConfig(site.dir, site.directory, {});
    const report = (machine: string, ageMs: number) => ({ version: 1, machine, agentPid: 1, url: null, startedAt: 0, intervalMs: 5_000,
      measuredAt: Date.now() - ageMs, slots: [] });
    const { EmbeddedDirectory } = await import('../../src/directory/index.js');
    const { testLogger, testRegistry } = await import('../helpers/logger.js');
    const dir = await EmbeddedDirectory.open({ file: site.file, historyLimit: 100 }, { logger: testLogger(), metrics: testRegistry() });
    try {
      await dir.publishStatus('agent', 'imap9', report('imap9', 3_600_000)); // gone an hour ago
      await dir.publishStatus('agent', 'imap8', report('imap8', 1_000)); // still running
      await dir.publishStatus('agent', 'imap1', report('imap1', 3_600_000)); // stale, but its slots are in the directory
    } finally {
      await dir.close();
    }
    const agents = async () => (JSON.parse((await cli(['--config', config, 'status', '--json'])).stdout) as { agents: Array<{ machine: string }> })
      .agents.map((a) => a.machine);
    expect(await agents()).toEqual(['imap1', 'imap8', 'imap9']);

    const unknown = await cli(['--config', config, 'agent', 'forget', 'imap7']);
    expect(unknown).toMatchObject({ code: 1, stderr: 'error: no agent report for machine imap7; reports are kept for: imap1, imap8, imap9\n' });
    const inLayout = await cli(['--config', config, 'agent', 'forget', 'imap1']);
    expect(inLayout.code).toBe(1);
    expect(inLayout.stderr).toMatch(/^error: machine imap1 still has slot\(s\) slot101, slot102 in the directory: its agent has work there/);
    const running = await cli(['--config', config, 'agent', 'forget', 'imap8']);
    expect(running.code).toBe(1);
    expect(running.stderr).toMatch(/^error: the agent on imap8 reported 1 s ago: it is running/);
    expect(await agents()).toEqual(['imap1', 'imap8', 'imap9']);

    const gone = await cli(['--config', config, '--actor', 'ops:decom', 'agent', 'forget', 'imap9']);
    expect(gone.code, gone.stderr).toBe(0);
    expect(gone.stdout).toMatch(/^forgot the agent on imap9 \(last report \d{4}-/);
    expect(await cli(['--config', config, '--actor', 'ops:decom', 'agent', 'forget', 'imap8', '--force'])).toMatchObject({ code: 0 });
    expect(await agents()).toEqual(['imap1']);
    const history = JSON.parse((await cli(['--config', config, 'history', '--json'])).stdout) as Array<Record<string, unknown>>;
    expect(history.slice(0, 2).map((h) => [h.actor, h.action, h.target])).toEqual([
      ['ops:decom', 'agent-forget', 'machine:imap8'], ['ops:decom', 'agent-forget', 'machine:imap9']]);
  });
});

describe('agent-main.ts, the entry operators run', () => {
  it('-h prints its usage; an unknown option or a missing config file exits 2 before anything starts', async () => {
    const run = async (args: string[]) => {
      let stdout = '';
      let stderr = '';
      const code = await runAgentMain(args, { stdout: (t) => { stdout += t; }, stderr: (t) => { stderr += t; }, stdin: Readable.from([]), env: {} });
      return { code, stdout, stderr };
    };
    expect(await run(['-h'])).toMatchObject({ code: 0, stdout: expect.stringMatching(/^usage: node --max-semi-space-size=1 --single-threaded dist\/cli\/agent-main\.js/) });
    expect(await run(['--bogus'])).toMatchObject({ code: 2, stderr: expect.stringContaining("Unknown option '--bogus'") });
    expect(await run(['--config', '/nonexistent/agent.yaml'])).toMatchObject({ code: 2, stderr: expect.stringContaining('/nonexistent/agent.yaml') });
    // The same refusals as `storeroute agent` (one code path: runAgent).
    const site = await embeddedLayout();
    expect(await run(['--config', writeConfig(site.dir, site.directory, {})])).toMatchObject({ code: 2,
      stderr: expect.stringContaining('agent.machine is not set') });
  });
});

describe('the agent as a child process', () => {
  it('publishes its report as status, records its repair in the history, and stops on SIGTERM', async () => {
    const site = await embeddedLayout();
    const s = slot();
    // A leftover log-run with no rolling client: the orphan repair replays it (here: appends it to a file).
    writeFileSync(join(s.syncDir, 'log-run'), 'APPEND user.alice\n');
    const replica = join(s.root, 'replica.log');
    const config = writeConfig(site.dir, site.directory, {
      machine: 'imap1', intervalMs: 200, listen: { port: 0 }, slots: [{ name: 'slot101', imapdConf: s.conf }],
      repairs: { startRollingClient: false },
      commands: { replayFile: ['/bin/sh', '-c', 'cat "$1" >> "$2"', 'sh', '{file}', replica] },
    });
    // As the README's systemd unit runs it: the lean entry under the shipped node options.
    const child = spawn(process.execPath, [...AGENT_NODE_OPTIONS, '--import', 'tsx', join(root, 'src/cli/agent-main.ts'), '--config', config],
      { cwd: root, env: { PATH: process.env.PATH, HOME: process.env.HOME }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => { output += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { output += d.toString(); });
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    try {
      const status = async () => JSON.parse((await cli(['--config', config, 'status', '--json'])).stdout) as {
        replication: Array<{ store: string; state: string; master: { pendingBytes: number | null } }>;
        agents: Array<{ machine: string; stale: boolean; slots: string[] }>;
      };
      const store1 = await waitFor(async () => {
        if (child.exitCode !== null) throw new Error(`agent exited with ${child.exitCode}: ${output}`);
        const st = await status();
        return st.replication.find((v) => v.store === 'store1' && v.state === 'caught-up');
      }, 30_000, 'store1 caught-up in status');
      expect(store1.master.pendingBytes).toBe(0);
      const st = await status();
      expect(st.agents).toEqual([expect.objectContaining({ machine: 'imap1', stale: false, slots: ['slot101'] })]);
      // store2's master (slot202, imap2) has no agent: unknown, listed first.
      expect(st.replication.map((v) => [v.store, v.state])).toEqual([['store2', 'unknown'], ['store1', 'caught-up']]);

      expect(readFileSync(replica, 'utf8')).toBe('APPEND user.alice\n');
      const history = JSON.parse((await cli(['--config', config, 'history', '--json'])).stdout) as Array<Record<string, unknown>>;
      expect(history[0]).toMatchObject({ version: 10, actor: 'agent:imap1', action: 'replay-orphan-file', target: 'slot:slot101',
        detail: { result: 'ok', files: ['log-run'], commands: [['/bin/sh', '-c', 'cat "$1" >> "$2"', 'sh', join(s.syncDir, 'log-run'), replica]] } });
      const text = await cli(['--config', config, 'history', '--limit', '1']);
      expect(text.stdout).toMatch(/agent:imap1\s+replay-orphan-file\s+slot:slot101\s+ok: replayed and removed log-run \(18 bytes\)\n$/);
    } finally {
      child.kill('SIGTERM');
    }
    await waitFor(() => child.exitCode !== null || child.signalCode !== null, 15_000, 'the agent to exit after SIGTERM');
    expect(await exited).toBe(0);
  });
});
