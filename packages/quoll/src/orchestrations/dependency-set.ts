import { createHash } from 'node:crypto';
import type { Hash } from 'node:crypto';
import { lstat, readdir, readFile } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { ApiError } from '../errors/index.js';

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
  /**
   * Dependencies that are folders or tarballs inside the zip (`file:`, `link:` or a relative
   * path); `dependencies` names them `file:<path in the zip>`, and the install points npm at
   * a copy. @default []
   */
  local?: LocalDependency[];
  /** The extracted zip root the `local` dependencies are copied from. */
  localRoot?: string;
}

/** A dependency shipped inside the zip. */
export interface LocalDependency {
  name: string;
  /** Path in the zip, relative to its root. */
  from: string;
}

/**
 * Specs npm fetches with git: `git+…`/`git:` URLs, hosted shortcuts (`github:`, `gitlab:`,
 * `bitbucket:`, `gist:`, bare `user/repo`), and URLs of a `.git` repository. Installs never run
 * git (a clone's `prepare` script and its `.npmrc` would run code): refused up front.
 */
const GIT_SPEC =
  /^(git\+|git:|github:|gitlab:|bitbucket:|gist:|[\w.-]+\/[\w.-]+(#.*)?$|https?:\/\/\S+\.git(#.*)?$)/i;

/** A lockfile's `resolved` (or v1 `version`) naming a git source. */
const GIT_LOCK_ENTRY = /"(resolved|version)"\s*:\s*"(git\+|git:|github:|gitlab:|bitbucket:|gist:)/i;

function refuseGit(source: string, what: string, details: Record<string, string>): ApiError {
  return new ApiError(
    'dependency_source_refused',
    `${what} in the orchestration's ${source} is fetched from git, which packaging does not do. ` +
      'Publish the package to the registry, or put it in the zip as a folder or .tgz and name it by path ("file:./pkg").',
    { file: source, ...details },
  );
}

/**
 * Refuses a folder of the zip used as a dependency whose own `package.json` names a git
 * dependency (npm would fetch it for that folder). A tarball is not looked into: npm's
 * `npm_config_git` of installs fails any clone anyway.
 */
async function refuseGitInside(filesDir: string, from: string): Promise<void> {
  const source = `${from}/package.json`;
  const text = await readIfExists(join(filesDir, source)).catch(() => null);
  if (text === null) return;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return; // npm reports it, naming the file.
  }
  for (const field of ['dependencies', 'optionalDependencies', 'peerDependencies']) {
    const deps = (parsed as Record<string, unknown> | null)?.[field];
    if (deps === null || typeof deps !== 'object' || Array.isArray(deps)) continue;
    for (const [name, range] of Object.entries(deps as Record<string, unknown>)) {
      if (typeof range === 'string' && GIT_SPEC.test(range) && !LOCAL_SPEC.test(range))
        throw refuseGit(source, `The dependency "${name}": "${range}"`, { dependency: name });
    }
  }
}

/** Specs npm reads as a path on disk: `file:…`, `link:…` (yarn/pnpm), or a bare relative or absolute path. */
const LOCAL_SPEC = /^(file:|link:|\.{1,2}(\/|$)|\/|~)/;

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
 * `dependencies` is not an object of strings; `dependency_source_refused` when a dependency
 * (of the `package.json`, of a folder of the zip it names, or a lockfile entry) comes from git.
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
    const local: LocalDependency[] = [];
    const localHash = createHash('sha256');
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
      if (GIT_SPEC.test(range) && !LOCAL_SPEC.test(range))
        throw refuseGit(source, `The dependency "${name}": "${range}"`, { dependency: name });
      if (LOCAL_SPEC.test(range)) {
        const dep = await resolveLocal(filesDir, place, source, name, range);
        await refuseGitInside(filesDir, dep.from);
        local.push(dep);
        dependencies[name] = `file:${dep.from}`;
        // The content decides whether an environment can be shared.
        localHash.update(`${name}\0${dep.from}\0`);
        await hashTree(join(filesDir, dep.from), localHash);
        continue;
      }
      dependencies[name] = range;
    }
    if (Object.keys(dependencies).length === 0) return null;
    const lockSource = place === '' ? 'package-lock.json' : `${place}/package-lock.json`;
    const lockfile = await readIfExists(join(filesDir, lockSource));
    if (lockfile !== null && GIT_LOCK_ENTRY.test(lockfile)) throw refuseGit(lockSource, 'An entry', {});
    const hash = hashDependencySet(
      dependencies,
      local.length === 0 ? lockfile : `${lockfile ?? ''}\0local\0${localHash.digest('hex')}`,
      nodeMajor,
    );
    return local.length === 0
      ? { dependencies, lockfile, hash, source }
      : { dependencies, lockfile, hash, source, local, localRoot: filesDir };
  }
  return null;
}

/**
 * Resolves a dependency given as a path: it must lie inside the zip and be a folder with a
 * `package.json` or a tarball; anything else is refused with the reason.
 */
async function resolveLocal(
  filesDir: string,
  place: string,
  source: string,
  name: string,
  range: string,
): Promise<LocalDependency> {
  const refuse = (why: string): ApiError =>
    new ApiError(
      'invalid_archive',
      `The dependency "${name}": "${range}" in the orchestration's ${source} ${why}. ` +
        'A path dependency must be a folder (with a package.json) or a .tgz inside the zip; publish anything else to a registry.',
      { file: source, dependency: name },
    );
  const raw = range.replace(/^(file:|link:)/, '');
  if (raw.startsWith('/') || raw.startsWith('~') || /^[A-Za-z]:/.test(raw))
    throw refuse('is an absolute path, which does not exist where the orchestration is packaged');
  const from = posix.normalize(posix.join(place === '' ? '.' : place, raw)).replace(/\/$/, '');
  if (from === '..' || from.startsWith('../')) throw refuse('points outside the zip');
  let st;
  try {
    st = await lstat(join(filesDir, from));
  } catch {
    throw refuse('is not in the zip');
  }
  if (st.isDirectory()) {
    try {
      await lstat(join(filesDir, from, 'package.json'));
    } catch {
      throw refuse('is a folder without a package.json');
    }
  } else if (!st.isFile() || !/\.(tgz|tar\.gz|tar)$/.test(from)) {
    throw refuse('is neither a folder nor a .tgz tarball');
  }
  return { name, from };
}

/** Feeds a file or folder's relative paths and contents into `h`, in a stable order. */
async function hashTree(path: string, h: Hash, rel = ''): Promise<void> {
  const st = await lstat(path);
  if (st.isDirectory()) {
    h.update(`d\0${rel}\0`);
    for (const entry of (await readdir(path)).sort())
      await hashTree(join(path, entry), h, rel === '' ? entry : `${rel}/${entry}`);
  } else if (st.isFile()) {
    h.update(`f\0${rel}\0${st.size}\0`);
    h.update(await readFile(path));
  }
}
