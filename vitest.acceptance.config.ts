import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

/** `npm run test:e2e`: the whole seed tutorial as a user runs it (about two minutes). */
export default defineConfig({
  test: {
    include: ['test/acceptance/**/*.test.ts'],
    pool: 'forks',
    // The TypeScript and the Python tutorial side by side (cores − 1, Vitest's default, runs one
    // at a time on two cores); each mostly waits on its server and its runs.
    maxWorkers: Math.max(2, availableParallelism() - 1),
    testTimeout: 300_000,
  },
});
