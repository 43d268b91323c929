import { describe, it, expect, afterEach } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readImapdConf, syncDirFor, channelProblem } from '../../src/agent/imapd-conf.js';
import { AgentError } from '../../src/agent/errors.js';
import { makeSlot, type TmpSlot } from './helpers.js';

const made: TmpSlot[] = [];
afterEach(() => {
  for (const s of made.splice(0)) s.cleanup();
});

function newSlot(): TmpSlot {
  const s = makeSlot();
  made.push(s);
  return s;
}

function confWith(lines: string[]): string {
  const file = join(newSlot().root, 'test.conf');
  writeFileSync(file, lines.join('\n') + '\n');
  return file;
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(AgentError);
    return (err as AgentError).code;
  }
  throw new Error('expected a rejection');
}

describe('readImapdConf (rules as cyr_info shows them on Cyrus 3.6.1)', () => {
  it('reads keys case-insensitively, trims values, keeps a # inside a value', async () => {
    const file = confWith(['  ConfigDirectory: /var/lib/cyrus-x   ', '# a comment', '', 'partition-default: /srv/x # not a comment', 'sync_log: yes']);
    const c = await readImapdConf(file);
    expect(c.configDirectory).toBe('/var/lib/cyrus-x');
    expect(c.options.get('partition-default')).toBe('/srv/x # not a comment');
    expect(c.syncLog).toBe(true);
    expect(c.syncLogChannels).toEqual([null]);
  });

  it('joins continuation lines without inserting anything, before looking for comments', async () => {
    const file = confWith(['configdirectory: /c', 'sync_log_channels: "" \\', 'chanA', '# a comment ending in \\', 'servername: swallowed']);
    const c = await readImapdConf(file);
    expect(c.syncLogChannels).toEqual([null, 'chanA']);
    expect(c.options.has('servername')).toBe(false);
  });

  it('follows @include and resolves configdirectory to an absolute path', async () => {
    const slot = newSlot();
    writeFileSync(join(slot.root, 'inc.conf'), 'sync_log: 1\nsync_log_channels: repl\n');
    const file = join(slot.root, 'main.conf');
    writeFileSync(file, `configdirectory: ${slot.configDirectory}\n@include: inc.conf\n`);
    const c = await readImapdConf(file);
    expect(c.syncLog).toBe(true);
    expect(syncDirFor(c, 'repl')).toBe(join(slot.configDirectory, 'sync', 'repl'));
    expect(syncDirFor(c, null)).toBe(join(slot.configDirectory, 'sync'));
    expect(channelProblem(c, 'repl')).toBeNull();
    expect(channelProblem(c, null)).toMatch(/does not list the default channel/);
  });

  it('says when sync_log is off: an empty log would prove nothing', async () => {
    const c = await readImapdConf(confWith(['configdirectory: /c']));
    expect(c.syncLog).toBe(false);
    expect(channelProblem(c, null)).toMatch(/sync_log is off/);
  });

  it('refuses what Cyrus refuses, each with a stable code', async () => {
    expect(await codeOf(readImapdConf('/nonexistent/imapd.conf'))).toBe('IMAPD_CONF_UNREADABLE');
    expect(await codeOf(readImapdConf(confWith(['sync_log: 1'])))).toBe('IMAPD_CONF_NO_CONFIGDIRECTORY');
    expect(await codeOf(readImapdConf(confWith(['configdirectory /c'])))).toBe('IMAPD_CONF_INVALID');
    expect(await codeOf(readImapdConf(confWith(['configdirectory:'])))).toBe('IMAPD_CONF_INVALID');
    expect(await codeOf(readImapdConf(confWith(['configdirectory: /a', 'configdirectory: /b'])))).toBe('IMAPD_CONF_INVALID');
    expect(await codeOf(readImapdConf(confWith(['configdirectory: /a', 'sync_log: maybe'])))).toBe('IMAPD_CONF_INVALID');
    expect(await codeOf(readImapdConf(confWith(['configdirectory: /a', '@frobnicate: x'])))).toBe('IMAPD_CONF_INVALID');
  });

  it('names the file and line of a bad line', async () => {
    const file = confWith(['configdirectory: /a', 'bad line here']);
    const err = await readImapdConf(file).catch((e: AgentError) => e);
    expect(err).toMatchObject({ code: 'IMAPD_CONF_INVALID', facts: { file, line: 2 } });
  });

  it('refuses a file that includes itself', async () => {
    const file = join(newSlot().root, 'loop.conf');
    writeFileSync(file, `configdirectory: /c\n@include: ${file}\n`);
    expect(await codeOf(readImapdConf(file))).toBe('IMAPD_CONF_INVALID');
  });
});
