import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { copySharedBlob, sha256OfFile } from '../blobs/index.js';
import type { SharedBlobStorage } from '../blobs/index.js';
import { pathExists } from '../files/index.js';

const run = promisify(execFile);

/** Longest a `tar` of a package may take before it is abandoned (a very large environment). */
const TAR_TIMEOUT_MS = 10 * 60_000;

/** The two trees of a packaged orchestration that another node needs to run it. */
export interface PackageTrees {
  /** The extracted zip with the compiled entry (`<home>/orchestrations/<id>/files`). */
  filesDir: string;
  /** Its dependency environment (npm `node_modules` parent or Python venv); null: none. */
  envDir: string | null;
}

/**
 * Archives a packaged orchestration (its files and its dependency environment, owners kept
 * numerically) and stores it in the cluster's shared blob storage, content-addressed.
 * Returns the archive's SHA-256.
 *
 * @example
 * const sha = await sharePackage(shared, { filesDir, envDir }, join(home, 'tmp'));
 */
export async function sharePackage(
  shared: SharedBlobStorage,
  trees: PackageTrees,
  tmpDir: string,
): Promise<string> {
  await mkdir(tmpDir, { recursive: true });
  const archive = join(tmpDir, `package-${randomUUID()}.tar.gz`);
  try {
    const args = [
      '-czf',
      archive,
      '--numeric-owner',
      '-C',
      dirname(trees.filesDir),
      basename(trees.filesDir),
    ];
    if (trees.envDir !== null) args.push('-C', dirname(trees.envDir), basename(trees.envDir));
    await run('tar', args, { timeout: TAR_TIMEOUT_MS, maxBuffer: 1024 * 1024 });
    const sha = await sha256OfFile(archive);
    const { size } = await stat(archive);
    await shared.put(sha, size, () => createReadStream(archive));
    return sha;
  } finally {
    await rm(archive, { force: true });
  }
}

/**
 * Puts this node's copy of a package another node archived with {@link sharePackage} in place:
 * fetched from the shared storage (its SHA-256 checked before anything is unpacked), the files
 * replace `trees.filesDir`, and the environment becomes `trees.envDir` unless this node already
 * has it (an environment is named by its dependency set, so an existing one is the same).
 */
export async function restorePackage(
  shared: SharedBlobStorage,
  sha: string,
  trees: PackageTrees,
  tmpDir: string,
): Promise<void> {
  await mkdir(tmpDir, { recursive: true });
  const id = randomUUID();
  const archive = join(tmpDir, `package-${id}.tar.gz`);
  const staging = join(tmpDir, `package-${id}`);
  try {
    await copySharedBlob(shared, sha, archive);
    await mkdir(staging);
    await run('tar', ['-xzf', archive, '--numeric-owner', '-C', staging], {
      timeout: TAR_TIMEOUT_MS,
      maxBuffer: 1024 * 1024,
    });
    if (trees.envDir !== null && !(await pathExists(trees.envDir))) {
      await mkdir(dirname(trees.envDir), { recursive: true });
      // Another restore or build may publish the same environment first: theirs is as good.
      await rename(join(staging, basename(trees.envDir)), trees.envDir).catch(async (err: unknown) => {
        if (!(await pathExists(trees.envDir as string))) throw err;
      });
    }
    await rm(trees.filesDir, { recursive: true, force: true });
    await mkdir(dirname(trees.filesDir), { recursive: true });
    await rename(join(staging, basename(trees.filesDir)), trees.filesDir);
  } finally {
    await rm(archive, { force: true });
    await rm(staging, { recursive: true, force: true });
  }
}
