/**
 * The directory capability's entry: `createDirectory(config.directory, obs)` returns the
 * configured backend (embedded file or Redis) behind the read cache. Everything other folders
 * need from the directory is exported from here, including storeroute's Redis plumbing that auth/
 * and replay/ use too: opening a client (redis/client.ts) and registering a Lua script
 * (redis/scripts.ts, the one registration path). The keys themselves are built in
 * core/redis-keys.ts, below every user.
 */
import type { Config } from '../config/index.js';
import type { Observability } from '../core/deps.js';
import type { Directory } from './types.js';
import { EmbeddedDirectory } from './embedded/index.js';
import { RedisDirectory } from './redis/index.js';
import { CachedDirectory } from './cache.js';
import type { Backend } from './backend.js';
import type { Redis } from 'ioredis';

export type { Directory, DirectoryReader, DirectoryWriter, Readiness, CommitPlan, CommitResult } from './types.js';
export * from './model.js';
export {
  DirectoryUnavailableError, DirectoryConflictError, DirectoryRuleError, DirectoryNotFoundError, DirectoryFileError,
} from '../core/errors.js';
export { directoryKeys, type DirectoryKeys } from '../core/redis-keys.js';
export {
  createRedisClient, closeRedisClient, reconnectDelay, type RedisConfig, type RedisClientOptions,
} from './redis/client.js';
export { registerScript, readLuaFile, scriptCommandName, type ScriptSpec, type ScriptCall } from './redis/scripts.js';
export { canonicalUser, type Mutation } from './rules.js';
export { MAX_STATUS_BYTES } from './status.js';
export { parseDirectoryText, readDirectoryFile, exportDirectory, toFileObject, writeDirectoryFile } from './file.js';
export {
  applyDirectory, diffDirectory, runMutation, describeMutation, countDeletions, checkDeletions, DirectoryApplyIncompleteError,
  DEFAULT_MAX_DELETE_SHARE, type ApplyOptions, type ApplyResult, type Deletions,
} from './apply.js';

export { CachedDirectory } from './cache.js';
export { EmbeddedDirectory } from './embedded/index.js';
export { RedisDirectory, type RedisTuning, type RedisOpenOptions } from './redis/index.js';
export type { Backend, FeedEvent } from './backend.js';

export type DirectoryConfig = Config['directory'];

export interface DirectoryShared {
  /**
   * With the Redis backend: the command connection to use instead of opening one. The caller
   * opened it and closes it after the directory (main.ts lends the same one to the auth throttle
   * and the heartbeat); the directory still opens, and closes, its own subscriber.
   */
  redis?: Redis | undefined;
}

/**
 * Opens the configured backend behind the read cache (unless `cache.enabled` is false). With
 * Redis, it does not fail when Redis is down: lookups throw DirectoryUnavailableError until it is up.
 */
export async function createDirectory(config: DirectoryConfig, obs: Observability, shared: DirectoryShared = {}): Promise<Directory> {
  const backend: Backend = config.backend === 'embedded'
    ? await EmbeddedDirectory.open({ file: config.embedded.file, seed: config.embedded.seed,
      historyLimit: config.embedded.historyLimit }, obs)
    : await RedisDirectory.open(config.redis, obs, undefined, shared.redis ? { client: shared.redis } : {});
  return config.cache.enabled ? new CachedDirectory(backend, { maxEntries: config.cache.maxEntries }, obs) : backend;
}
