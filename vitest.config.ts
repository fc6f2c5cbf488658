import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['packages/*/src/**/*.test.ts', 'test/**/*.test.ts'],
    // The seed tutorial runs once, in npm run test:e2e (vitest.acceptance.config.ts), not here too.
    exclude: ['**/node_modules/**', '**/dist/**', 'test/acceptance/**'],
    // Real servers, real child processes and onnxruntime: forks isolate native state per file.
    pool: 'forks',
    // Generous: many tests start servers and CLI processes, which on a loaded two-core machine
    // take several times what they take on an idle one. A hung test still fails.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    reporters: ['default'],
  },
});
