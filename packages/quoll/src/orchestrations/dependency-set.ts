import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { ApiError } from '../server/api-error.js';

/** The npm dependencies an orchestration asks for, normalised for caching. */
export interface DependencySet {
  /** `name → range`, sorted by name; `@quoll/client` is never in it (Quoll provides it). */
  dependencies: Record<string, string>;
  /** The zip's `package-lock.json` text, when it has one beside the `package.json`. */
  lockfile: string | null;
  /** Content hash: equal sets share one installed environment. */
  hash: string;
  /** Where the `package.json` was found, relative to the zip root. */
  source: string;
}

/** The SDK package, always provided by the server and never installed from the registry. */
const CLIENT_PACKAGE = '@quoll/client';

/**
 * Hashes a dependency set: sorted `name@range` lines, the lockfile text and the Node.js
 * major version (native add-ons are built per major), so identical sets share one install.
 */
export function hashDependencySet(
  dependencies: Record<string, string>,
  lockfile: string | null,
  nodeMajor: number,
): string {
  const h = createHash('sha256');
  for (const name of Object.keys(dependencies).sort()) h.update(`${name}@${dependencies[name] ?? ''}\n`);
  h.update(`\0lock\0${lockfile ?? ''}\0node\0${nodeMajor}`);
  // 32 hex digits (128 bits) keep env paths short and are plenty against collisions.
  return h.digest('hex').slice(0, 32);
}

async function readIfExists(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/**
 * Reads the dependency set of an extracted orchestration: the `package.json` at the zip
 * root, else the one beside the entrypoint (a zip of a folder puts it there). Returns null
 * when there is no `package.json` or it lists no dependencies (besides `@quoll/client`).
 *
 * Only `dependencies` count: `devDependencies` are for the author's editor and tests.
 *
 * @throws ApiError `invalid_archive` when the `package.json` is not valid JSON or its
 * `dependencies` is not an object of strings.
 */
export async function readDependencySet(
  filesDir: string,
  entrypoint: string,
  nodeMajor: number,
): Promise<DependencySet | null> {
  const entryDir = posix.dirname(entrypoint);
  const places = entryDir === '.' ? [''] : ['', entryDir];
  for (const place of places) {
    const source = place === '' ? 'package.json' : `${place}/package.json`;
    const text = await readIfExists(join(filesDir, source));
    if (text === null) continue;
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      throw new ApiError(
        'invalid_archive',
        `The orchestration's ${source} is not valid JSON (${(err as Error).message}). Fix it and upload again.`,
        { file: source },
      );
    }
    const deps = (parsed as { dependencies?: unknown } | null)?.dependencies;
    if (deps === undefined || deps === null) return null;
    if (typeof deps !== 'object' || Array.isArray(deps)) {
      throw new ApiError(
        'invalid_archive',
        `The "dependencies" of the orchestration's ${source} must be an object of name → version range.`,
        { file: source },
      );
    }
    const dependencies: Record<string, string> = {};
    for (const name of Object.keys(deps).sort()) {
      const range = (deps as Record<string, unknown>)[name];
      if (typeof range !== 'string') {
        throw new ApiError(
          'invalid_archive',
          `The dependency "${name}" in the orchestration's ${source} has a non-string version range; write it like "^1.2.3".`,
          { file: source, dependency: name },
        );
      }
      if (name === CLIENT_PACKAGE) continue;
      dependencies[name] = range;
    }
    if (Object.keys(dependencies).length === 0) return null;
    const lockfile = await readIfExists(
      join(filesDir, place === '' ? 'package-lock.json' : `${place}/package-lock.json`),
    );
    return { dependencies, lockfile, hash: hashDependencySet(dependencies, lockfile, nodeMajor), source };
  }
  return null;
}
