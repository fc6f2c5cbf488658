import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository's root (this file is test/support/shared-fixtures.ts). */
export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

/**
 * The shared folder beside the repository (`<repo>/../shared`), which holds the tutorial's real
 * model and data for developers and CI and is never copied into the repository.
 * `QUOLL_SHARED_DIR` points elsewhere (e.g. from a git worktree that is not beside it).
 */
export const SHARED_DIR = process.env.QUOLL_SHARED_DIR
  ? resolve(process.env.QUOLL_SHARED_DIR)
  : resolve(REPO_ROOT, '..', 'shared');

/** The tutorial's house-price model and data. */
export const SHARED_FIXTURES = `${join(SHARED_DIR, 'fixtures', 'houseprice')}/`;

/** Whether the shared fixtures are present. */
export const hasSharedFixtures = existsSync(`${SHARED_FIXTURES}rf_model.onnx`);

/** Why fixture tests are skipped. */
export const SKIP_REASON = `skipped: the shared fixtures are not at ${SHARED_FIXTURES} (lay ../shared beside the repository or set QUOLL_SHARED_DIR; tests on the project's own generated models still run)`;

if (!hasSharedFixtures) {
  // CI always has ../shared beside its clone: a missing one there is a broken setup, not a skip.
  if (process.env.CI === 'true') {
    throw new Error(
      `CI=true, but the shared fixtures are missing at ${SHARED_FIXTURES}: the fixture tests must run in CI. Lay ../shared beside the repository (or set QUOLL_SHARED_DIR).`,
    );
  }
  console.warn(SKIP_REASON);
}
