import { defineConfig } from 'vitest/config';

// Unit and integration tests: need only Node and redis-server (spawned per test file on a free port).
// Two cores: two workers; each file spawns its own peers, so files stay independent.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    exclude: ['test/e2e/**', 'node_modules/**'],
    maxWorkers: 2,
    testTimeout: 20_000,
    hookTimeout: 30_000,
  },
});
