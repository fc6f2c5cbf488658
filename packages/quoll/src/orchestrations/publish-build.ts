import { rename, rm } from 'node:fs/promises';

/**
 * Moves a finished build from its temporary folder to its content-addressed place. When
 * another process on this home finished the same build first, theirs is as good: the
 * temporary folder is removed and theirs stays.
 */
export async function publishBuild(tmp: string, dir: string): Promise<void> {
  try {
    await rename(tmp, dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
    await rm(tmp, { recursive: true, force: true });
  }
}
