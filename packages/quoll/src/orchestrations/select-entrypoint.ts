import { ApiError } from '../server/api-error.js';

/** Entrypoint names, in the order they win when several sit in the same folder. */
export const MAIN_NAMES: readonly string[] = ['main.ts', 'main.mts', 'main.js', 'main.mjs'];

const SCRIPT = /\.(ts|mts|js|mjs)$/;
const DECLARATION = /\.d\.m?ts$/;

function depth(path: string): number {
  return path.split('/').length - 1;
}

function baseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

/**
 * Picks the file a run starts, from the archive's file paths (`/`-separated, relative to
 * the zip root), following the product rule:
 * 1. `main.ts`, `main.mts`, `main.js` or `main.mjs` at the root (in that order of preference);
 * 2. else the shallowest such file in a subdirectory (ties: name preference, then path order);
 * 3. else the single `.ts`/`.mts`/`.js`/`.mjs` script at the root.
 *
 * A zip made by zipping a folder (everything under one `myjob/`) therefore runs
 * `myjob/main.ts` by rule 2, and the working directory is still the zip root, so that
 * code reads its data as `./myjob/data.json`. Files under `node_modules/` never count
 * (vendored packages often have a `main.js`).
 *
 * @throws ApiError `archive_no_entrypoint` naming what was found and how to fix it.
 */
export function selectEntrypoint(files: readonly string[]): string {
  const candidates = files.filter((f) => !f.split('/').includes('node_modules'));
  const rank = (f: string): number => MAIN_NAMES.indexOf(baseName(f));

  const mains = candidates.filter((f) => rank(f) >= 0);
  if (mains.length > 0) {
    // Rule 1 is rule 2 at depth 0, so one sort covers both.
    const [best] = [...mains].sort(
      (a, b) => depth(a) - depth(b) || rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0),
    );
    if (best !== undefined) return best;
  }

  const rootScripts = candidates.filter((f) => depth(f) === 0 && SCRIPT.test(f) && !DECLARATION.test(f));
  if (rootScripts.length === 1 && rootScripts[0] !== undefined) return rootScripts[0];

  if (files.length === 0) {
    throw new ApiError(
      'archive_no_entrypoint',
      'The orchestration zip is empty. Add a main.ts (or main.js) at the root of the zip and upload it again.',
    );
  }
  if (rootScripts.length > 1) {
    throw new ApiError(
      'archive_no_entrypoint',
      `The orchestration zip has ${rootScripts.length} scripts at its root (${rootScripts.slice(0, 5).join(', ')}) ` +
        'and no main.ts/main.mts/main.js/main.mjs, so it is not clear which one to run. ' +
        'Rename the script to run to main.ts (or main.js) and upload again.',
      { scripts: rootScripts },
    );
  }
  throw new ApiError(
    'archive_no_entrypoint',
    'The orchestration zip has no entrypoint: no main.ts/main.mts/main.js/main.mjs anywhere and no single ' +
      '.ts/.js script at its root. Add a main.ts (or main.js) at the root of the zip and upload again.',
    { files: files.slice(0, 20) },
  );
}
