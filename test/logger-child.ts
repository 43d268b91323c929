/**
 * Child for test/logger.test.ts: the production logger on stdout. Logs one line at start, then
 * one line per line read on stdin; "exit" logs a last line and calls process.exit() at once.
 */
import { createInterface } from 'node:readline';
import { createLogger } from '../src/main.js';

const logger = createLogger({ level: 'info' });
logger.info({ n: 0 }, 'child_started');
createInterface({ input: process.stdin }).on('line', (line) => {
  if (line === 'exit') {
    for (let n = 1; n <= 50; n++) logger.info({ n }, 'child_last_words');
    process.exit(0);
  }
  logger.info({ line }, 'child_line');
});
