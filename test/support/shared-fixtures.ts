import { hasSharedFixtures, SHARED_FIXTURES } from './shared-dir.js';

export { hasSharedFixtures, REPO_ROOT, SHARED_DIR, SHARED_FIXTURES } from './shared-dir.js';

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
