/**
 * The directory capability's entry: `createDirectory(config.directory, obs)` returns the
 * configured backend (embedded file or Redis) behind the read cache. Everything other folders
 * need from the directory is exported from here.
 */
import type { Config } from '../config/index.js';
import type { Observability } from '../core/deps.js';
import type { Directory } from './types.js';
import { EmbeddedDirectory } from './embedded/index.js';
import { RedisDirectory } from './redis/index.js';

export type { Directory, DirectoryReader, DirectoryWriter } from './types.js';
export * from './model.js';
export {
  DirectoryUnavailableError, DirectoryConflictError, DirectoryRuleError, DirectoryNotFoundError, DirectoryFileError,
} from '../core/errors.js';
export { directoryKeys, type DirectoryKeys } from './redis/keys.js';
export { createRedisClient, reconnectDelay, type RedisConfig, type RedisClientOptions } from './redis/client.js';
export { canonicalUser, type Mutation } from './rules.js';
export { parseDirectoryText, readDirectoryFile, exportDirectory, toFileObject } from './file.js';
export {
  applyDirectory, diffDirectory, runMutation, describeMutation, DirectoryApplyIncompleteError,
  type ApplyOptions, type ApplyResult,
} from './apply.js';

export type DirectoryConfig = Config['directory'];

export async function createDirectory(config: DirectoryConfig, obs: Observability): Promise<Directory> {
  if (config.backend === 'embedded') {
    return EmbeddedDirectory.open({ file: config.embedded.file, seed: config.embedded.seed,
      historyLimit: config.embedded.historyLimit }, obs);
  }
  return RedisDirectory.open(config.redis, obs);
}
