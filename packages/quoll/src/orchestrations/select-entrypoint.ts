import { ApiError } from '../errors/index.js';

/** TypeScript/JavaScript entrypoint names, in the order they win when several sit in the same folder. */
export const MAIN_NAMES: readonly string[] = ['main.ts', 'main.mts', 'main.js', 'main.mjs'];

/** The Python entrypoint name (the seed's rule: `main.py`, else the only `.py` at the root). */
export const PYTHON_MAIN = 'main.py';

/** The language runtime that runs an orchestration, decided by its entrypoint. */
export type OrchestrationRuntime = 'node' | 'python';

const SCRIPT = /\.(ts|mts|js|mjs)$/;
const DECLARATION = /\.d\.m?ts$/;
const PYTHON_SCRIPT = /\.py$/;

/** Folders that hold installed or generated code, never the user's entrypoint. */
const VENDORED = new Set(['node_modules', '__pycache__', 'site-packages', '.venv', 'venv']);

function depth(path: string): number {
  return path.split('/').length - 1;
}

function baseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

/** Which runtime runs this entrypoint: `.py` → Python, anything else → Node. */
export function entrypointRuntime(entrypoint: string): OrchestrationRuntime {
  return PYTHON_SCRIPT.test(entrypoint) ? 'python' : 'node';
}

/** One language's pick: its entrypoint, several root scripts without a main, or nothing. */
type Pick = { entry: string } | { ambiguous: string[] } | null;

/**
 * One language's rule: a main file at the root (in `mainNames` order), else the shallowest
 * main in a subdirectory (ties: name preference, then path order), else the single script at
 * the root.
 */
function pick(
  candidates: readonly string[],
  mainNames: readonly string[],
  isScript: (f: string) => boolean,
): Pick {
  const rank = (f: string): number => mainNames.indexOf(baseName(f));
  const mains = candidates.filter((f) => rank(f) >= 0);
  if (mains.length > 0) {
    // The root rule is the subdirectory rule at depth 0, so one sort covers both.
    const [best] = [...mains].sort(
      (a, b) => depth(a) - depth(b) || rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0),
    );
    if (best !== undefined) return { entry: best };
  }
  const rootScripts = candidates.filter((f) => depth(f) === 0 && isScript(f));
  if (rootScripts.length === 1 && rootScripts[0] !== undefined) return { entry: rootScripts[0] };
  if (rootScripts.length > 1) return { ambiguous: rootScripts };
  return null;
}

/**
 * Picks the file a run starts, from the archive's file paths (`/`-separated, relative to
 * the zip root). The same rule for both languages:
 * 1. the main file at the root: `main.ts`, `main.mts`, `main.js` or `main.mjs` (in that order
 *    of preference) for TypeScript/JavaScript, `main.py` for Python;
 * 2. else the shallowest such file in a subdirectory (ties: name preference, then path order);
 * 3. else the single script at the root (`.ts`/`.mts`/`.js`/`.mjs`, or `.py`).
 *
 * A zip with an entrypoint in both languages is refused, naming both. A zip made by zipping a
 * folder (everything under one `myjob/`) therefore runs `myjob/main.py` by rule 2, and the
 * working directory is still the zip root, so that code reads its data as `myjob/data.json`
 * (the packaging log says so). Files under `node_modules/`, `__pycache__/`, `site-packages/`,
 * `venv/` or `.venv/` never count (vendored packages often have a `main.js` or `main.py`).
 *
 * @throws ApiError `archive_no_entrypoint` naming what was found and how to fix it, or
 * `archive_two_entrypoints` naming both entrypoints.
 */
export function selectEntrypoint(files: readonly string[]): string {
  const candidates = files.filter((f) => !f.split('/').some((part) => VENDORED.has(part)));
  const node = pick(candidates, MAIN_NAMES, (f) => SCRIPT.test(f) && !DECLARATION.test(f));
  const python = pick(candidates, [PYTHON_MAIN], (f) => PYTHON_SCRIPT.test(f));

  if (node !== null && 'entry' in node && python !== null && 'entry' in python) {
    throw new ApiError(
      'archive_two_entrypoints',
      `The orchestration zip has both a TypeScript/JavaScript entrypoint (${node.entry}) and a Python one ` +
        `(${python.entry}), so it is not clear which language runs it. Remove one of them (or rename it so the ` +
        'rule no longer picks it) and upload again.',
      { node: node.entry, python: python.entry },
    );
  }
  if (node !== null && 'entry' in node) return node.entry;
  if (python !== null && 'entry' in python) return python.entry;

  if (files.length === 0) {
    throw new ApiError(
      'archive_no_entrypoint',
      'The orchestration zip is empty. Add a main.py (Python) or a main.ts (TypeScript) at the root of the zip and upload it again.',
    );
  }
  const ambiguous = [
    ...(node !== null && 'ambiguous' in node ? node.ambiguous : []),
    ...(python !== null && 'ambiguous' in python ? python.ambiguous : []),
  ];
  if (ambiguous.length > 0) {
    const pythonOnly = node === null;
    throw new ApiError(
      'archive_no_entrypoint',
      `The orchestration zip has ${ambiguous.length} scripts at its root (${ambiguous.slice(0, 5).join(', ')}) ` +
        `and no ${pythonOnly ? 'main.py' : 'main.ts/main.mts/main.js/main.mjs/main.py'}, so it is not clear which one to run. ` +
        `Rename the script to run to ${pythonOnly ? 'main.py' : 'main.ts (or main.js, or main.py for Python)'} and upload again.`,
      { scripts: ambiguous },
    );
  }
  throw new ApiError(
    'archive_no_entrypoint',
    'The orchestration zip has no entrypoint: no main.py or main.ts/main.mts/main.js/main.mjs anywhere and no single ' +
      '.py or .ts/.js script at its root. Add a main.py (Python) or a main.ts (TypeScript) at the root of the zip and upload again.',
    { files: files.slice(0, 20) },
  );
}
