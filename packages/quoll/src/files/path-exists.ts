import { access } from 'node:fs/promises';

/**
 * Whether something (a file, a folder, a link to one) is at `path`: false when it is missing
 * or cannot be reached (a folder on the way that this process may not search).
 *
 * @example if (!(await pathExists(join(dir, '.built')))) await build(dir);
 */
export async function pathExists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}
