import { defineConfig } from 'vitest/config';

// The real stack: postfix, nginx, Cyrus, redis. One file, run in order: the scenarios share the stack.
export default defineConfig({
  test: {
    include: ['test/e2e/**/*.test.ts'],
    fileParallelism: false,
    maxWorkers: 1,
    testTimeout: 120_000,
    hookTimeout: 180_000,
  },
});
