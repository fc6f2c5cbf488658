import { constants } from 'node:fs';
import { chmod, lchown, lstat, open, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { TaskUser } from '../runner/index.js';

/**
 * Makes a finished build the server's, before it is published: every entry of `dir` (links
 * themselves, never their targets) is given to this process's user when the build ran as
 * another (`builtAs`), and loses group and other write (and set-id bits): a directory becomes
 * 0755, an executable 0755, any other file 0644. A later process of the task user (a run, the
 * next install) can then read a shared environment but never rewrite what other orchestrations
 * run with. Call it only once nothing of the build's user can run any more (its sandbox ended:
 * its PID namespace died with it), so the tree cannot change under the walk.
 */
export async function sealBuild(dir: string, builtAs: TaskUser | null): Promise<void> {
  const uid = process.getuid?.();
  const gid = process.getgid?.();
  const chown = builtAs !== null && uid !== undefined && gid !== undefined;
  const seal = async (path: string): Promise<void> => {
    const st = await lstat(path);
    if (chown) await lchown(path, uid, gid);
    if (st.isSymbolicLink()) return;
    if (st.isDirectory()) {
      await chmod(path, 0o755);
      for (const entry of await readdir(path)) await seal(join(path, entry));
      return;
    }
    // chmod follows links; `path` was lstat'ed as no link and nobody else can swap it now.
    await chmod(path, (st.mode & 0o111) !== 0 ? 0o755 : 0o644);
  };
  await seal(dir);
}

/**
 * Writes a new file at `path`, never through a link: whatever is at `path` (a link a build
 * planted, a file) is removed first, and the file is created with `O_EXCL | O_NOFOLLOW`, so
 * a link appearing in between fails the write instead of redirecting it.
 */
export async function writeNewFile(path: string, data: string): Promise<void> {
  await rm(path, { force: true, recursive: true });
  const file = await open(
    path,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
    0o644,
  );
  try {
    await file.writeFile(data);
  } finally {
    await file.close();
  }
}
