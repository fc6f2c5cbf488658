import { chmod, lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';

/** What a directory tree holds on disk. */
export interface DiskUsage {
  /** Allocated bytes (`st_blocks` × 512) of every entry, the directory itself included; a file linked twice counts once. */
  bytes: number;
  /** Entries seen (files, directories, links), the directory itself included. */
  entries: number;
  /** True when the walk stopped at `maxEntries` (then `bytes` is a lower bound). */
  truncated: boolean;
}

/**
 * Adds up what `dir` holds on disk, without following links (a link to elsewhere counts as
 * itself), and stops after `maxEntries` entries or once `stopAtBytes` is passed (the answer
 * is then already "over"). Allocated blocks are counted, not sizes, so a sparse file counts
 * what it really uses. A directory its owner made unreadable (`chmod 000`, to hide what it
 * holds) is given back read and search rights by the owner (the server's user or root) and
 * read. Entries removed while it walks are skipped. A missing `dir` holds nothing.
 *
 * @throws when a directory stays unreadable: what it holds cannot be known.
 */
export async function measureDiskUsage(
  dir: string,
  options: { maxEntries: number; stopAtBytes?: number },
): Promise<DiskUsage> {
  const usage: DiskUsage = { bytes: 0, entries: 0, truncated: false };
  const stopAt = options.stopAtBytes ?? Number.POSITIVE_INFINITY;
  const seen = new Set<number>();
  const count = async (path: string): Promise<'dir' | 'other' | 'gone'> => {
    let st;
    try {
      st = await lstat(path);
    } catch (err) {
      if (isGone(err)) return 'gone';
      throw err;
    }
    usage.entries++;
    // A file with several names (hard links) takes its blocks once.
    if (!st.isDirectory() && st.nlink > 1) {
      if (seen.has(st.ino)) return 'other';
      seen.add(st.ino);
    }
    usage.bytes += st.blocks * 512;
    return st.isDirectory() ? 'dir' : 'other';
  };
  if ((await count(dir)) !== 'dir') return usage;
  const pending = [dir];
  while (pending.length > 0) {
    const current = pending.pop() as string;
    const names = await readNames(current);
    for (const name of names) {
      if (usage.entries >= options.maxEntries || usage.bytes > stopAt) {
        usage.truncated = usage.entries >= options.maxEntries;
        return usage;
      }
      const path = join(current, name);
      if ((await count(path)) === 'dir') pending.push(path);
    }
  }
  return usage;
}

/** A directory's names; one made unreadable by its owner is opened up first. */
async function readNames(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if (isGone(err)) return [];
    if (!isDenied(err)) throw err;
  }
  try {
    await chmod(dir, 0o700);
    return await readdir(dir);
  } catch (err) {
    if (isGone(err)) return [];
    throw new Error(`cannot read ${dir}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

function isGone(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

function isDenied(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'EACCES' || code === 'EPERM';
}
