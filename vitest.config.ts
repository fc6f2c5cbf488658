import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

/**
 * Files whose tests compare answers with what the machine does meanwhile (health answered again
 * and again while a model runs long, each in a small part of the run; requests answered during a
 * slow run; health within a bound while a large answer is written): they run alone, after the
 * others, so no other test file's load is on the machine meanwhile.
 */
const ALONE = [
  'packages/quoll/src/inference/inline-hostile-models.test.ts',
  'test/e2e/inline-hostile-models.test.ts',
  'test/e2e/inline-runs.test.ts',
  'test/e2e/large-answer.test.ts',
  'test/e2e/sync-handoff.test.ts',
];

/**
 * The packages' own test files share their worker processes (project `unit`, `isolate: false`):
 * a fresh fork per file cost about 0.6 s of CPU each (Node, Vitest's runner, the file's imports
 * evaluated again), more than the tests of most of these files (docs/benchmarks.md, "ci lane, 6
 * December"). Files that mock modules keep a process of their own (`vi.mock` is per module graph,
 * which shared workers keep): they are found by reading the files, so a new one needs no entry.
 * So do the files listed here, which measure the process they run in (heap, array buffers, CPU,
 * event-loop delay: what an earlier file left there would count); a new file that does that
 * belongs here. The alone files keep theirs too.
 */
const MEASURE_OWN_PROCESS = [
  'packages/quoll/src/inference/feed-slab.test.ts',
  'packages/quoll/src/logs/log-hand-off.large-append.test.ts',
  'packages/quoll/src/metrics/event-loop-lag.test.ts',
  'packages/quoll/src/metrics/process-metrics.test.ts',
  'packages/quoll/src/onnx/read-model-interface.test.ts',
  'packages/quoll/src/runner/file-run-log-store.test.ts',
  'packages/quoll/src/server/body-budget.test.ts',
  'packages/quoll/src/threads/thread-clock.test.ts',
];

/** The packages' test files (relative paths, `/`-separated) that mock a module. */
function filesMockingModules(): string[] {
  const found: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory()) {
        if (entry.name !== 'node_modules' && entry.name !== 'dist') walk(path);
      } else if (
        entry.name.endsWith('.test.ts') &&
        /\bvi\.(?:do)?[mM]ock\(/.test(readFileSync(path, 'utf8'))
      ) {
        found.push(path);
      }
    }
  };
  // Paths relative to the repository (this file's folder), whatever the working directory.
  const root = fileURLToPath(new URL('.', import.meta.url));
  for (const pkg of readdirSync(`${root}packages`, { withFileTypes: true })) {
    if (pkg.isDirectory() && existsSync(`${root}packages/${pkg.name}/src`))
      walk(`${root}packages/${pkg.name}/src`);
  }
  return found.map((path) => path.slice(root.length)).sort();
}

const OWN_PROCESS = [...filesMockingModules(), ...MEASURE_OWN_PROCESS];
const UNIT = ['packages/*/src/**/*.test.ts'];

/** The end-to-end files: run again with every test server a node on PostgreSQL (below). */
const E2E = ['test/e2e/**/*.test.ts'];
const E2E_ALONE = ALONE.filter((file) => file.startsWith('test/e2e/'));

/**
 * Test files side by side, in the `suite` project and (in CI) the `e2e-postgres` one together: one
 * pool of this many, one file per core. Vitest's default (cores − 1) would be one file at a time
 * on CI's two cores, where the suite spends much of its time waiting on servers, child processes,
 * PostgreSQL and real timers (a cron tick, a lease). Three at a time kept both cores 100 % busy
 * (0 % idle) in CI's simulation of 6 December and two load-sensitive tests failed there
 * (docs/benchmarks.md, "CI time"), so not more. VITEST_MAX_WORKERS overrides every project's
 * count, the `alone` ones' too: not for CI.
 */
const SIDE_BY_SIDE = availableParallelism();

/**
 * `QUOLL_TEST_E2E_POSTGRES=1` (CI sets it: `.ci/run`) adds the end-to-end files again with every
 * test server a node on a fresh PostgreSQL database (`QUOLL_TEST_SERVER_DATABASE=postgres`, read by
 * test/support/test-server.ts), side by side with the suite instead of after it. Without it, as
 * in a plain `npm test`, they are not there: on a machine without PostgreSQL they could only fail.
 * `npm run test:e2e:postgres` runs them on their own.
 */
const e2ePostgres = process.env.QUOLL_TEST_E2E_POSTGRES === '1';
const ON_POSTGRES = { QUOLL_TEST_SERVER_DATABASE: 'postgres' };

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
          include: [...OWN_PROCESS, 'test/**/*.test.ts'],
          // The seed tutorial runs once, in npm run test:e2e (vitest.acceptance.config.ts), not here too.
          exclude: ['**/node_modules/**', '**/dist/**', 'test/acceptance/**', ...ALONE],
          maxWorkers: SIDE_BY_SIDE,
        },
      },
      {
        extends: true,
        test: {
          name: 'unit',
          include: UNIT,
          exclude: ['**/node_modules/**', '**/dist/**', ...OWN_PROCESS, ...ALONE],
          isolate: false,
          // The same group (and so the same pool) as `suite`: the count must be the same.
          maxWorkers: SIDE_BY_SIDE,
        },
      },
      ...(e2ePostgres
        ? [
            {
              extends: true as const,
              test: {
                name: 'e2e-postgres',
                include: E2E,
                exclude: ['**/node_modules/**', '**/dist/**', ...E2E_ALONE],
                env: ON_POSTGRES,
                // The same group (and so the same pool) as `suite`: the count must be the same.
                maxWorkers: SIDE_BY_SIDE,
              },
            },
          ]
        : []),
      // Group 1 runs after every file of group 0 has ended, one file at a time (the pool of a
      // group is shared by its projects, so `alone-postgres` never overlaps `alone`).
      {
        extends: true,
        test: { name: 'alone', include: ALONE, maxWorkers: 1, sequence: { groupOrder: 1 } },
      },
      ...(e2ePostgres
        ? [
            {
              extends: true as const,
              test: {
                name: 'alone-postgres',
                include: E2E_ALONE,
                env: ON_POSTGRES,
                maxWorkers: 1,
                sequence: { groupOrder: 1 },
              },
            },
          ]
        : []),
    ],
  },
});
