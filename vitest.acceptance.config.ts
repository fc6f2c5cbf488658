import { defineConfig } from 'vitest/config';

/** `npm run test:e2e`: the whole seed tutorial as a user runs it (about two minutes). */
export default defineConfig({
  test: {
    include: ['test/acceptance/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 300_000,
  },
});
