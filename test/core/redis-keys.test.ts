/**
 * Every Redis key and channel storeroute uses comes from src/core/redis-keys.ts, byte for byte what
 * the releases before it wrote (a rolling upgrade runs both on one Redis), and every Lua script is
 * registered through the one path under `sr_<name>_v<N>`. The running-process side (which keys a
 * serving storeroute touches, how many connections it opens) is test/redis-sharing.test.ts.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { authThrottleKeys, directoryKeys, instancesKey, redisKeys, statusKey } from '../../src/core/redis-keys.js';
import { scriptCommandName } from '../../src/directory/index.js';

const SRC = new URL('../../src/', import.meta.url).pathname;

function* files(dir: string, ext: string): Generator<string> {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) yield* files(path, ext);
    else if (name.endsWith(ext)) yield path;
  }
}

/** The code of a .ts file without its comments (a comment may describe a key; only code builds one). */
function code(path: string): string {
  return readFileSync(path, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:])\/\/.*$/gm, '$1');
}

describe('the Redis keys module', () => {
  it('builds every key and channel, byte-identical to the layout already in Redis', () => {
    const k = redisKeys('storeroute:');
    const staged = k.directory.staging('0123456789abcdef');
    expect({
      directory: {
        version: k.directory.version, slots: k.directory.slots, stores: k.directory.stores, users: k.directory.users,
        history: k.directory.history, userCount: k.directory.userCount, retiredEpochs: k.directory.retiredEpochs,
        channel: k.directory.channel,
      },
      staging: staged,
      mutationKeys: k.directory.mutation,
      readKeys: k.directory.read,
      commitKeys: k.directory.commit('0123456789abcdef'),
      authThrottle: { ip: k.authThrottle.ip('192.0.2.1'), user: k.authThrottle.user('alice@example.org') },
      instances: k.instances,
      agentStatus: k.status('agent'),
      failoverLease: k.failoverLease('store1'),
    }).toEqual({
      directory: {
        version: 'storeroute:{dir}:version',
        slots: 'storeroute:{dir}:slots',
        stores: 'storeroute:{dir}:stores',
        users: 'storeroute:{dir}:users',
        history: 'storeroute:{dir}:history',
        userCount: 'storeroute:{dir}:user-count',
        retiredEpochs: 'storeroute:{dir}:retired-epochs',
        channel: 'storeroute:{dir}:changes',
      },
      staging: {
        slots: 'storeroute:{dir}:apply:0123456789abcdef:slots',
        stores: 'storeroute:{dir}:apply:0123456789abcdef:stores',
        users: 'storeroute:{dir}:apply:0123456789abcdef:users',
        history: 'storeroute:{dir}:apply:0123456789abcdef:history',
      },
      mutationKeys: ['storeroute:{dir}:version', 'storeroute:{dir}:slots', 'storeroute:{dir}:stores', 'storeroute:{dir}:users',
        'storeroute:{dir}:history', 'storeroute:{dir}:user-count', 'storeroute:{dir}:retired-epochs'],
      readKeys: ['storeroute:{dir}:version', 'storeroute:{dir}:slots', 'storeroute:{dir}:stores', 'storeroute:{dir}:users'],
      commitKeys: ['storeroute:{dir}:version', 'storeroute:{dir}:slots', 'storeroute:{dir}:stores', 'storeroute:{dir}:users',
        'storeroute:{dir}:history', 'storeroute:{dir}:user-count', 'storeroute:{dir}:retired-epochs',
        'storeroute:{dir}:apply:0123456789abcdef:slots', 'storeroute:{dir}:apply:0123456789abcdef:stores',
        'storeroute:{dir}:apply:0123456789abcdef:users', 'storeroute:{dir}:apply:0123456789abcdef:history'],
      authThrottle: { ip: 'storeroute:{auth}:fail:ip:192.0.2.1', user: 'storeroute:{auth}:fail:user:alice@example.org' },
      instances: 'storeroute:{instances}',
      agentStatus: 'storeroute:{status}:agent',
      failoverLease: 'storeroute:failover:lease:store1',
    });
    expect(redisKeys('p:')).toMatchObject({ directory: { version: directoryKeys('p:').version }, instances: instancesKey('p:') });
    expect(authThrottleKeys('p:').ip('::1')).toBe('p:{auth}:fail:ip:::1');
  });

  it('keeps each group under one hash tag (one Cluster slot per script)', () => {
    const k = redisKeys('x:');
    for (const key of [...k.directory.commit('abcdef0123'), k.directory.channel]) expect(key).toMatch(/^x:\{dir\}:/);
    expect(k.authThrottle.ip('198.51.100.1')).toMatch(/^x:\{auth\}:/);
    expect(k.authThrottle.user('bob')).toMatch(/^x:\{auth\}:/);
    expect(k.instances).toBe('x:{instances}');
    // Status sits apart from {dir}: a status write cannot share a Cluster slot, or a script, with the layout.
    expect(k.status('agent')).toMatch(/^x:\{status\}:/);
  });

  it('refuses a status kind that could not be part of a key', () => {
    for (const bad of ['', 'Agent', 'a:b', 'a}b', 'x'.repeat(33), '../agent']) {
      expect(() => statusKey('x:', bad)).toThrow(/status kind must match/);
    }
    expect(statusKey('x:', 'agent-v2')).toBe('x:{status}:agent-v2');
  });

  it('refuses a staging token that is not 8-32 hex digits (it becomes part of a key)', () => {
    expect(() => directoryKeys('x:').staging('../../etc')).toThrow(/8-32 hex digits/);
    expect(() => directoryKeys('x:').staging('abc')).toThrow(/8-32 hex digits/);
  });

  it('is the only place in src/ that spells a hash tag: no other module builds a key', () => {
    const spelled = [...files(SRC, '.ts')]
      // (`${dir}` is a template placeholder, not a hash tag.)
      .filter((f) => /(^|[^$])\{(dir|auth|instances|status)\}/.test(code(f)))
      .map((f) => relative(SRC, f));
    expect(spelled).toEqual(['core/redis-keys.ts']);
  });
});

describe('Lua script registration', () => {
  it('names every script sr_<name>_v<N> and refuses anything else', () => {
    expect(scriptCommandName('failover', 4)).toBe('sr_failover_v4');
    expect(scriptCommandName('recordFailure', 1)).toBe('sr_recordFailure_v1');
    expect(() => scriptCommandName('record-failure', 1)).toThrow(/camelCase/);
    expect(() => scriptCommandName('Failover', 1)).toThrow(/camelCase/);
    expect(() => scriptCommandName('failover', 0)).toThrow(/positive integer/);
    expect(() => scriptCommandName('failover', 1.5)).toThrow(/positive integer/);
  });

  it('has one registration path: only directory/redis/scripts.ts calls defineCommand', () => {
    const callers = [...files(SRC, '.ts')].filter((f) => /\bdefineCommand\s*\(/.test(code(f))).map((f) => relative(SRC, f));
    expect(callers).toEqual(['directory/redis/scripts.ts']);
  });
});
