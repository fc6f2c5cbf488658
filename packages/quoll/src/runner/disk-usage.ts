import { chmodSync, lstatSync, readdirSync } from 'node:fs';
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
 * Entries looked at between two turns of the event loop: synchronous `lstat`s are several
 * times cheaper than a promise each, and a batch holds the loop for a few milliseconds only.
 */
const BATCH = 256;

/**
 * Adds up what `dir` holds on disk, without following links (a link to elsewhere counts as
 * itself), and stops after `maxEntries` entries or once `stopAtBytes` is passed (the answer
 * is then already "over"). Allocated blocks are counted, not sizes, so a sparse file counts
 * what it really uses. A directory its owner made unreadable (`chmod 000`, to hide what it
 * holds) is given back read and search rights by the owner (the server's user or root) and
 * read. Entries removed while it walks are skipped. A missing `dir` holds nothing. Works in
 * batches of synchronous calls with a turn of the event loop between them.
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
  const count = (path: string): 'dir' | 'other' | 'gone' => {
    let st;
    try {
      st = lstatSync(path, { throwIfNoEntry: false });
    } catch (err) {
      if (isGone(err)) return 'gone';
      throw err;
    }
    if (st === undefined) return 'gone';
    usage.entries++;
    // A file with several names (hard links) takes its blocks once.
    if (!st.isDirectory() && st.nlink > 1) {
      if (seen.has(st.ino)) return 'other';
      seen.add(st.ino);
    }
    usage.bytes += st.blocks * 512;
    return st.isDirectory() ? 'dir' : 'other';
  };
  if (count(dir) !== 'dir') return usage;
  const pending = [dir];
  let batch = 0;
  while (pending.length > 0) {
    const current = pending.pop() as string;
    for (const name of readNames(current)) {
      if (usage.entries >= options.maxEntries || usage.bytes > stopAt) {
        usage.truncated = usage.entries >= options.maxEntries;
        return usage;
      }
      const path = join(current, name);
      if (count(path) === 'dir') pending.push(path);
      if (++batch >= BATCH) {
        batch = 0;
        await new Promise((resolve) => setImmediate(resolve));
      }
    }
  }
  return usage;
}

/** A directory's names; one made unreadable by its owner is opened up first. */
function readNames(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch (err) {
    if (isGone(err)) return [];
    if (!isDenied(err)) throw err;
  }
  try {
    chmodSync(dir, 0o700);
    return readdirSync(dir);
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
