/**
 * The one way storeroute registers a Lua script: `registerScript` defines it with ioredis
 * `defineCommand` under `sr_<name>_v<version>` (`sr_failover_v4`, `sr_recordFailure_v1`), so two
 * releases with different script bodies can share one Redis during a rolling upgrade, and one
 * client can carry every capability's scripts without two names meeting. ioredis sends EVALSHA and
 * falls back to EVAL on NOSCRIPT (after a restart or SCRIPT FLUSH). Scripts are kept as .lua files
 * beside the module that calls them (in src/ and, copied by scripts/copy-assets.mjs, in dist/) and
 * read with `readLuaFile`. Exported from the directory's entry for auth/'s record-failure.lua.
 *
 * Below that, the directory's own scripts: read once per process start, defined per client.
 * Bump SCRIPT_VERSION whenever one of their contracts changes.
 */
import { readFileSync } from 'node:fs';
import type { Cluster, Redis } from 'ioredis';
import type { Mutation } from '../rules.js';

/** A registered script: KEYS first, then ARGV, as the .lua file's contract lists them. The reply is the caller's to check. */
export type ScriptCall = (...keysAndArgs: Array<string | number>) => Promise<unknown>;

export interface ScriptSpec {
  /** camelCase, unique across storeroute (the .lua file's name, or its purpose). */
  name: string;
  /** Bumped whenever the script's contract (KEYS, ARGV, reply) or body changes. */
  version: number;
  numberOfKeys: number;
  /** The Lua source (`readLuaFile`). */
  lua: string;
  /** Touches no key for writing (lets ioredis send it to a replica where allowed). */
  readOnly?: boolean;
}

const NAME = /^[a-z][A-Za-z0-9]*$/;

/** The command name a script is registered under: `sr_<name>_v<version>`. */
export function scriptCommandName(name: string, version: number): string {
  if (!NAME.test(name)) throw new Error(`script name must be camelCase letters and digits, got ${JSON.stringify(name)}`);
  if (!Number.isInteger(version) || version < 1) throw new Error(`script ${name}: version must be a positive integer, got ${version}`);
  return `sr_${name}_v${version}`;
}

/** A .lua file's text, e.g. `readLuaFile(new URL('./lua/x.lua', import.meta.url))`. */
export function readLuaFile(file: URL): string {
  return readFileSync(file, 'utf8');
}

/** Defines `spec` on `client` and returns the call: the typed boundary's one cast to a script function. */
export function registerScript(client: Redis | Cluster, spec: ScriptSpec): ScriptCall {
  const command = scriptCommandName(spec.name, spec.version);
  client.defineCommand(command, { numberOfKeys: spec.numberOfKeys, lua: spec.lua, ...(spec.readOnly ? { readOnly: true } : {}) });
  const f = (client as unknown as Record<string, ScriptCall>)[command];
  if (typeof f !== 'function') throw new Error(`script ${command} was not defined`);
  return f.bind(client);
}

/** 4: a 7th key (retiredEpochs) for every mutation script; commit.lua. recordEvent.lua came later, changing no other contract. */
export const SCRIPT_VERSION = 4;

export const MUTATION_SCRIPTS = [
  'createSlot', 'updateSlot', 'deleteSlot', 'setSlotState',
  'createStore', 'updateStore', 'deleteStore', 'setStoreState', 'failover',
  'createUser', 'deleteUser', 'setUserState', 'beginMove', 'finishMove', 'abortMove', 'setPasswordHash',
] as const satisfies readonly Mutation['op'][];

export type MutationScript = (typeof MUTATION_SCRIPTS)[number];

function source(name: string): string {
  return readLuaFile(new URL(`./scripts/${name}.lua`, import.meta.url));
}

/** Script sources, read once per process start (not per client). */
export interface ScriptSources {
  mutations: Record<MutationScript, string>;
  resolve: string;
  commit: string;
  recordEvent: string;
}

export function loadScriptSources(): ScriptSources {
  const common = source('common');
  const mutations = {} as Record<MutationScript, string>;
  for (const name of MUTATION_SCRIPTS) mutations[name] = `${common}\n${source(name)}`;
  return { mutations, resolve: source('resolve'), commit: source('commit'), recordEvent: source('recordEvent') };
}

/** The directory's command names (`sr_createSlot_v4`, …). */
export function commandName(script: string): string {
  return scriptCommandName(script, SCRIPT_VERSION);
}

export interface DirectoryScripts {
  mutate(script: MutationScript, keys: string[], args: string[]): Promise<[number, string]>;
  /** The JSON text `[version, user, store, slot]`, or version (unknown user), 0 (no directory), -1 (dangling): resolve.lua. */
  resolve(keys: string[], user: string): Promise<number | string>;
  /** commit.lua: the new version. */
  commit(keys: string[], args: string[]): Promise<number>;
  /** recordEvent.lua: [version recorded at, epoch ms]. */
  recordEvent(keys: string[], args: string[]): Promise<[number, number]>;
}

export function defineScripts(client: Redis, sources: ScriptSources): DirectoryScripts {
  const define = (name: string, numberOfKeys: number, lua: string, readOnly = false) =>
    registerScript(client, { name, version: SCRIPT_VERSION, numberOfKeys, lua, readOnly });
  const mutationFns = Object.fromEntries(MUTATION_SCRIPTS.map((n) => [n, define(n, 7, sources.mutations[n])])) as Record<MutationScript, ScriptCall>;
  const resolveFn = define('resolve', 4, sources.resolve, true);
  const commitFn = define('commit', 11, sources.commit);
  // Defined on first use: only slot agents record events, and a proxy's client carries only the
  // scripts it runs (test/redis-sharing.test.ts lists them).
  let recordEventFn: ScriptCall | undefined;
  return {
    mutate: async (script, keys, args) => (await mutationFns[script](...keys, ...args)) as [number, string],
    resolve: async (keys, user) => (await resolveFn(...keys, user)) as number | string,
    commit: async (keys, args) => (await commitFn(...keys, ...args)) as number,
    recordEvent: async (keys, args) => {
      recordEventFn ??= define('recordEvent', 2, sources.recordEvent);
      const reply = await recordEventFn(...keys, ...args);
      if (!Array.isArray(reply) || reply.length !== 2) throw new Error(`${commandName('recordEvent')}: unexpected reply ${JSON.stringify(reply)}`);
      return [Number(reply[0]), Number(reply[1])];
    },
  };
}
