import { existsSync } from 'node:fs';
import { chmod, cp, lchown, lstat, mkdir, readdir, rm } from 'node:fs/promises';
import { isAbsolute, join, normalize, resolve } from 'node:path';
import type { PackagedOrchestration } from './run-request.js';
import type { TaskUser } from './task-user.js';

/**
 * Creates the directory that holds every run's directory, once: private, not a symlink,
 * owned by this process's user. With a task user it is 0711, so that user can enter its
 * own run directory without listing the others.
 */
export async function ensureRunsDir(dir: string, user: TaskUser | null): Promise<void> {
  const mode = user === null ? 0o700 : 0o711;
  await mkdir(dir, { recursive: true, mode });
  const st = await lstat(dir);
  const uid = process.getuid?.();
  if (!st.isDirectory() || (uid !== undefined && st.uid !== uid)) {
    throw new Error(
      `The runs directory ${dir} is not a directory owned by this user; remove it or set QUOLL_RUNS_DIR elsewhere.`,
    );
  }
  await chmod(dir, mode);
}

/** Creates an empty private run directory (0700), owned by the task user when one is set. */
export async function createRunDir(runDir: string, user: TaskUser | null): Promise<void> {
  await mkdir(runDir, { recursive: true, mode: 0o700 });
  await chmod(runDir, 0o700);
  if (user !== null) await lchown(runDir, user.uid, user.gid);
}

/**
 * Copies the package into an existing run directory (its top-level `node_modules` stays out:
 * dependencies are linked or mounted, never copied) and gives the tree to the task user when
 * one is set. Returns the entry's path relative to the run directory.
 */
export async function fillRunDir(
  pkg: PackagedOrchestration,
  runDir: string,
  user: TaskUser | null,
): Promise<string> {
  const entry = normalize(pkg.entry);
  if (isAbsolute(entry) || entry.startsWith('..'))
    throw new Error(`entry ${pkg.entry} is outside the package`);
  const source = resolve(pkg.dir);
  const topModules = join(source, 'node_modules');
  await cp(source, runDir, { recursive: true, filter: (src) => resolve(src) !== topModules });
  if (!existsSync(join(runDir, entry))) throw new Error(`entry ${pkg.entry} not found in the package`);
  if (user !== null) await chownTree(runDir, user);
  return entry;
}

/** Gives a directory tree (links themselves, not their targets) to the task user. */
export async function chownTree(dir: string, user: TaskUser): Promise<void> {
  await lchown(dir, user.uid, user.gid);
  for (const name of await readdir(dir, { recursive: true })) {
    await lchown(join(dir, name), user.uid, user.gid);
  }
}

/**
 * Removes a run (or build) directory and everything in it. A run can take its owner's rights
 * off a folder it made (`chmod 000`), and a server that is not root then cannot list or empty
 * it: its files would outlive the run, run after run. When a plain removal fails, every folder
 * of the tree (links not followed) is given back to its owner (0700) and the removal retried.
 */
export async function removeRunDir(dir: string): Promise<void> {
  try {
    await rm(dir, { recursive: true, force: true });
    return;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EACCES' && code !== 'EPERM') throw err;
  }
  await openUp(dir);
  await rm(dir, { recursive: true, force: true });
}

/** Gives the owner read, write and search rights on `dir` and every folder below it. */
async function openUp(dir: string): Promise<void> {
  let st;
  try {
    st = await lstat(dir);
  } catch {
    return;
  }
  if (!st.isDirectory()) return;
  await chmod(dir, 0o700);
  for (const entry of await readdir(dir, { withFileTypes: true }))
    if (entry.isDirectory()) await openUp(join(dir, entry.name));
}
