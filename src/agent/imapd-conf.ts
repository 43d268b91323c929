/**
 * Reading a slot's imapd.conf the way Cyrus does, for the few keys the agent needs
 * (configdirectory, sync_log, sync_log_channels). Rules checked against `cyr_info -C FILE conf`
 * on Cyrus 3.6.1 (Debian 12):
 * - a line ending in `\` continues on the next line; the backslash goes, nothing is inserted
 *   (`a: "" \` + `chanA` → `a: "" chanA`). Joining happens before comment detection, so a comment
 *   line ending in `\` swallows the next line.
 * - leading whitespace is skipped; empty lines and lines starting with `#` are comments. A `#`
 *   later in a line is part of the value (`partition-default: /x # y` → "/x # y").
 * - the key is [A-Za-z0-9_-]+ (case-insensitive: `ConfigDirectory:` works) followed directly by
 *   `:`; anything else is fatal ("invalid option name"). The value is trimmed; an empty value is
 *   fatal, so is a key given twice, and so is a missing configdirectory.
 * - `@include: FILE` reads FILE in place (a file included twice is fatal).
 * We refuse exactly what Cyrus refuses: a file Cyrus would not start with is an error here too.
 * One difference: a relative `@include` or `configdirectory` is resolved against the including
 * file's folder; Cyrus uses its own working directory, which the agent cannot know.
 */
import { readFile } from 'node:fs/promises';
import { resolve, dirname, join } from 'node:path';
import { AgentError, errnoCode } from './errors.js';

export interface ImapdConf {
  /** The file read (absolute). */
  file: string;
  configDirectory: string;
  /** `sync_log` switch: off means nothing is ever logged, so an empty log proves nothing. */
  syncLog: boolean;
  /**
   * `sync_log_channels`, split on spaces; `null` stands for `""` (the default channel,
   * `{configdirectory}/sync/log`). Absent key: only the default channel is logged.
   */
  syncLogChannels: (string | null)[];
  /** Every option seen, lower-cased key → value (for diagnostics). */
  options: ReadonlyMap<string, string>;
}

const KEY = /^@?[A-Za-z0-9_-]+/;

/** Cyrus's config_parse_switch: these words, anything else is not a switch. */
function parseSwitch(value: string): boolean | null {
  const v = value.toLowerCase();
  if (['1', 'yes', 'on', 't', 'true'].includes(v)) return true;
  if (['0', 'no', 'off', 'f', 'false'].includes(v)) return false;
  return null;
}

async function readLines(file: string, seen: Set<string>, out: Map<string, string>): Promise<void> {
  if (seen.has(file)) {
    throw new AgentError('IMAPD_CONF_INVALID', `${file} is included twice`, { file });
  }
  seen.add(file);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new AgentError('IMAPD_CONF_UNREADABLE', `cannot read ${file}: ${(err as Error).message}`,
      { file, errno: errnoCode(err) }, { cause: err });
  }
  const raw = text.split('\n');
  for (let i = 0; i < raw.length; i++) {
    const lineNo = i + 1;
    let line = raw[i] ?? '';
    while (line.endsWith('\\') && i + 1 < raw.length) line = line.slice(0, -1) + (raw[++i] ?? '');
    const body = line.replace(/^\s+/, '');
    if (body === '' || body.startsWith('#')) continue;
    const key = KEY.exec(body)?.[0];
    if (!key || body[key.length] !== ':') {
      throw new AgentError('IMAPD_CONF_INVALID', `${file} line ${lineNo}: invalid option name`, { file, line: lineNo });
    }
    const value = body.slice(key.length + 1).trim();
    if (value === '') {
      throw new AgentError('IMAPD_CONF_INVALID', `${file} line ${lineNo}: empty value for ${key}`, { file, line: lineNo, key });
    }
    const name = key.toLowerCase();
    if (name === '@include') {
      await readLines(resolve(dirname(file), value), seen, out);
      continue;
    }
    if (name.startsWith('@')) {
      throw new AgentError('IMAPD_CONF_INVALID', `${file} line ${lineNo}: unknown directive ${key}`, { file, line: lineNo, key });
    }
    if (out.has(name)) {
      throw new AgentError('IMAPD_CONF_INVALID', `${file} line ${lineNo}: ${name} is given twice`, { file, line: lineNo, key: name });
    }
    out.set(name, value);
  }
}

export async function readImapdConf(path: string): Promise<ImapdConf> {
  const file = resolve(path);
  const options = new Map<string, string>();
  await readLines(file, new Set(), options);
  const configDirectory = options.get('configdirectory');
  if (!configDirectory) {
    throw new AgentError('IMAPD_CONF_NO_CONFIGDIRECTORY', `${file} has no configdirectory: cannot find the sync log`, { file });
  }
  const syncLogValue = options.get('sync_log');
  const syncLog = syncLogValue === undefined ? false : parseSwitch(syncLogValue);
  if (syncLog === null) {
    throw new AgentError('IMAPD_CONF_INVALID', `${file}: sync_log is not a switch: ${JSON.stringify(syncLogValue)}`, { file, key: 'sync_log' });
  }
  const channelsValue = options.get('sync_log_channels');
  const syncLogChannels = channelsValue === undefined
    ? [null]
    : channelsValue.split(/\s+/).filter(Boolean).map((c) => (c === '""' ? null : c));
  return { file, configDirectory: resolve(dirname(file), configDirectory), syncLog, syncLogChannels, options };
}

/**
 * The directory holding one channel's log: `{configdirectory}/sync/log` for the default channel,
 * `{configdirectory}/sync/<channel>/log` for a named one (sync_log.c sync_log_fname; seen on
 * 3.6.1 with `sync_log_channels: "" chanA chanB`: one record went to sync/log, sync/chanA/log and
 * sync/chanB/log; with `sync_log_channels: chanA` alone, sync/log got nothing).
 */
export function syncDirFor(conf: ImapdConf, channel: string | null): string {
  return channel === null ? join(conf.configDirectory, 'sync') : join(conf.configDirectory, 'sync', channel);
}

/** Why this slot's replication channel is never written (null when it is). */
export function channelProblem(conf: ImapdConf, channel: string | null): string | null {
  if (!conf.syncLog) return `${conf.file}: sync_log is off, so nothing is ever logged for replication`;
  if (!conf.syncLogChannels.includes(channel)) {
    const name = channel === null ? 'the default channel ("")' : `channel ${channel}`;
    return `${conf.file}: sync_log_channels does not list ${name}, so its log is never written`;
  }
  return null;
}
