/**
 * Child process for the "unreadable" tests: root reads everything, so the test runs the reader
 * as `nobody` here and prints the reading as JSON. argv[2]: the readSyncDir options as JSON.
 */
import { readSyncDir, type ReadSyncDirOptions } from '../../src/agent/sync-log.js';

const opts = JSON.parse(process.argv[2] as string) as ReadSyncDirOptions;
process.stdout.write(JSON.stringify(await readSyncDir(opts)));
