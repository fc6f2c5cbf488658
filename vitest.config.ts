import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

/**
 * Files whose tests bound a latency while the machine works (health answered within 100 ms while
 * a model runs long; requests answered during a slow run): they run alone, after the others, so
 * no other test file's load is on the machine meanwhile.
 */
const ALONE = [
  'packages/quoll/src/inference/inline-hostile-models.test.ts',
  'test/e2e/inline-hostile-models.test.ts',
  'test/e2e/inline-runs.test.ts',
  'test/e2e/large-answer.test.ts',
  'test/e2e/sync-handoff.test.ts',
];

export default defineConfig({
  test: {
    // Real servers, real child processes and onnxruntime: forks isolate native state per file.
    pool: 'forks',
    // Generous: many tests start servers and CLI processes, which on a loaded two-core machine
    // take several times what they take on an idle one. A hung test still fails.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    reporters: ['default'],
    projects: [
      {
        extends: true,
        test: {
          name: 'suite',
          include: ['packages/*/src/**/*.test.ts', 'test/**/*.test.ts'],
          // The seed tutorial runs once, in npm run test:e2e (vitest.acceptance.config.ts), not here too.
          exclude: ['**/node_modules/**', '**/dist/**', 'test/acceptance/**', ...ALONE],
          // One file per core. Vitest's default (cores − 1) is one file at a time on a two-core
          // CI machine, where the suite spends half its time waiting on servers, child processes,
          // PostgreSQL and real timers (a cron tick, a lease): two files overlap those waits.
          // VITEST_MAX_WORKERS overrides it. Measured in docs/benchmarks.md, "CI time".
          maxWorkers: availableParallelism(),
        },
      },
      {
        extends: true,
        test: { name: 'alone', include: ALONE, maxWorkers: 1, sequence: { groupOrder: 1 } },
      },
    ],
  },
});
