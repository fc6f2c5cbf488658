import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository's root (this file is test/support/shared-dir.ts). */
export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

/**
 * The shared folder beside the repository (`<repo>/../shared`), which holds the tutorial's real
 * model and data for developers and CI and is never copied into the repository.
 * `QUOLL_SHARED_DIR` points elsewhere (e.g. from a git worktree that is not beside it).
 * Importing this module has no side effects (examples read it too); the tests' skip notice is
 * in shared-fixtures.ts.
 */
export const SHARED_DIR = process.env.QUOLL_SHARED_DIR
  ? resolve(process.env.QUOLL_SHARED_DIR)
  : resolve(REPO_ROOT, '..', 'shared');

/** The tutorial's house-price model and data. */
export const SHARED_FIXTURES = `${join(SHARED_DIR, 'fixtures', 'houseprice')}/`;

/** Whether the shared fixtures are present. */
export const hasSharedFixtures = existsSync(`${SHARED_FIXTURES}rf_model.onnx`);
