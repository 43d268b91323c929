/**
 * Loads the Lua scripts (kept as .lua files beside this module, in src/ and, copied by
 * scripts/copy-assets.mjs, in dist/) and registers each with ioredis `defineCommand` under a
 * versioned name (`sr_failover_v1`), so two releases with different scripts can share one Redis
 * during a rolling upgrade. ioredis sends EVALSHA and falls back to EVAL on NOSCRIPT (after a
 * restart or SCRIPT FLUSH). Bump SCRIPT_VERSION whenever a script's contract changes.
 */
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import type { Mutation } from '../rules.js';

/** 4: a 7th key (retiredEpochs) for every mutation script; commit.lua. */
export const SCRIPT_VERSION = 4;

export const MUTATION_SCRIPTS = [
  'createSlot', 'updateSlot', 'deleteSlot', 'setSlotState',
  'createStore', 'updateStore', 'deleteStore', 'setStoreState', 'failover',
  'createUser', 'deleteUser', 'setUserState', 'beginMove', 'finishMove', 'abortMove', 'setPasswordHash',
] as const satisfies readonly Mutation['op'][];

export type MutationScript = (typeof MUTATION_SCRIPTS)[number];

function source(name: string): string {
  return readFileSync(new URL(`./scripts/${name}.lua`, import.meta.url), 'utf8');
}

/** Script sources, read once per process start (not per client). */
export interface ScriptSources {
  mutations: Record<MutationScript, string>;
  resolve: string;
  commit: string;
}

export function loadScriptSources(): ScriptSources {
  const common = source('common');
  const mutations = {} as Record<MutationScript, string>;
  for (const name of MUTATION_SCRIPTS) mutations[name] = `${common}\n${source(name)}`;
  return { mutations, resolve: source('resolve'), commit: source('commit') };
}

export function commandName(script: string): string {
  return `sr_${script}_v${SCRIPT_VERSION}`;
}

type ScriptFn = (...keysAndArgs: string[]) => Promise<unknown>;

/** The typed boundary to the dynamically defined commands: the only cast to a script function. */
export interface DirectoryScripts {
  mutate(script: MutationScript, keys: string[], args: string[]): Promise<[number, string]>;
  /** The JSON text `[version, user, store, slot]`, or version (unknown user), 0 (no directory), -1 (dangling): resolve.lua. */
  resolve(keys: string[], user: string): Promise<number | string>;
  /** commit.lua: the new version. */
  commit(keys: string[], args: string[]): Promise<number>;
}

export function defineScripts(client: Redis, sources: ScriptSources): DirectoryScripts {
  for (const name of MUTATION_SCRIPTS) {
    client.defineCommand(commandName(name), { numberOfKeys: 7, lua: sources.mutations[name] });
  }
  client.defineCommand(commandName('resolve'), { numberOfKeys: 4, lua: sources.resolve, readOnly: true });
  client.defineCommand(commandName('commit'), { numberOfKeys: 11, lua: sources.commit });
  const fn = (name: string): ScriptFn => {
    const f = (client as unknown as Record<string, ScriptFn>)[commandName(name)];
    if (typeof f !== 'function') throw new Error(`script ${name} was not defined`);
    return f.bind(client);
  };
  const resolveFn = fn('resolve');
  const commitFn = fn('commit');
  const mutationFns = Object.fromEntries(MUTATION_SCRIPTS.map((n) => [n, fn(n)])) as Record<MutationScript, ScriptFn>;
  return {
    mutate: async (script, keys, args) => (await mutationFns[script](...keys, ...args)) as [number, string],
    resolve: async (keys, user) => (await resolveFn(...keys, user)) as number | string,
    commit: async (keys, args) => (await commitFn(...keys, ...args)) as number,
  };
}
