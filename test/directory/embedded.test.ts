import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../src/config/index.js';
import { createDirectory } from '../../src/directory/index.js';
import { testLogger, testRegistry } from '../helpers/logger.js';
import { behaviourSuite } from './behaviour.js';

behaviourSuite('embedded', async () => {
  const tmp = await mkdtemp(join(tmpdir(), 'sr-dir-'));
  const config = parseConfig({ directory: { backend: 'embedded', embedded: { file: join(tmp, 'directory.json') } } });
  const open = () => createDirectory(config.directory, { logger: testLogger(), metrics: testRegistry() });
  const dir = await open();
  return {
    dir,
    // Another handle on the same file: it hears of `dir`'s saves through the file watcher.
    other: open,
    cleanup: async () => {
      await dir.close();
      await rm(tmp, { recursive: true, force: true });
    },
  };
});
