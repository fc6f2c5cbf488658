import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * The tutorial's real model and data live in `../shared/fixtures` beside the repository for
 * developers and CI, never in the repo. Tests that use them skip with this message otherwise.
 */
export const SHARED_FIXTURES = fileURLToPath(
  new URL('../../../shared/fixtures/houseprice/', import.meta.url),
);

/** Whether the shared fixtures are present. */
export const hasSharedFixtures = existsSync(`${SHARED_FIXTURES}rf_model.onnx`);

/** Why fixture tests are skipped. */
export const SKIP_REASON = `skipped: ../shared/fixtures not found at ${SHARED_FIXTURES} (tests on the project's own generated models still run)`;

if (!hasSharedFixtures) console.warn(SKIP_REASON);
