import { mkdir, open, rm } from 'node:fs/promises';
import { dirname, resolve, sep } from 'node:path';
import yauzl from 'yauzl';
import type { Entry, ZipFile } from 'yauzl';
import { ApiError } from '../errors/index.js';
import { selectEntrypoint } from './select-entrypoint.js';

/** Zip-bomb and size guards applied to every orchestration archive. */
export interface ArchiveLimits {
  /** Most bytes all entries may inflate to, together. @default 536870912 (512 MiB) */
  readonly maxTotalBytes: number;
  /** Highest inflated:compressed ratio one entry may have. @default 200 */
  readonly maxRatio: number;
  /**
   * Entries that inflate to at most this many bytes skip the ratio check: a small file of
   * repeated text compresses very well and is harmless. @default 1048576 (1 MiB)
   */
  readonly ratioMinBytes: number;
  /** Most entries (files and folders) an archive may hold. @default 10000 */
  readonly maxEntries: number;
}

/** The default {@link ArchiveLimits}. */
export const DEFAULT_ARCHIVE_LIMITS: ArchiveLimits = Object.freeze({
  maxTotalBytes: 512 * 1024 * 1024,
  maxRatio: 200,
  ratioMinBytes: 1024 * 1024,
  maxEntries: 10_000,
});

/** What a valid archive holds. */
export interface ArchiveManifest {
  /** Regular files, `/`-separated paths relative to the zip root, in archive order. */
  files: string[];
  /** The file a run starts (see `selectEntrypoint`). */
  entrypoint: string;
  /** Bytes the files actually inflated to (counted, not read from headers). */
  totalBytes: number;
}

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;

/** Folders that archivers add and that are never part of the user's code. */
const JUNK_PREFIX = '__MACOSX/';

interface PlannedEntry {
  entry: Entry;
  path: string;
  isDir: boolean;
}

function unsafe(name: string, why: string): ApiError {
  return new ApiError(
    'archive_unsafe_entry',
    `The orchestration zip entry "${name}" ${why}. Entries must be plain files and folders inside the zip root: ` +
      'rebuild the zip from the folder itself (e.g. `cd myjob && zip -r ../myjob.zip .`) without links or absolute paths.',
    { entry: name },
  );
}

function tooLarge(message: string, details: Record<string, unknown>): ApiError {
  return new ApiError('archive_too_large', message, details);
}

function invalid(message: string, details?: Record<string, unknown>): ApiError {
  return new ApiError('invalid_archive', message, details);
}

/**
 * Turns a raw entry name into a clean relative path, refusing anything that could land
 * outside the extraction root. Backslashes were already turned into `/` by yauzl.
 */
function safeRelativePath(name: string): string {
  if (name.includes('\0')) throw unsafe(name, 'has a NUL character in its name');
  if (name.startsWith('/')) throw unsafe(name, 'is an absolute path');
  if (/^[A-Za-z]:/.test(name)) throw unsafe(name, 'starts with a drive letter');
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw unsafe(name, 'climbs out of the zip root with ".."');
  return parts.join('/');
}

async function openZip(zipPath: string): Promise<ZipFile> {
  try {
    // decodeStrings off: yauzl would reject bad names with a generic error; we check them
    // ourselves so the message names the entry and carries the catalogue code.
    return await yauzl.openPromise(zipPath, {
      lazyEntries: true,
      autoClose: false,
      decodeStrings: false,
      validateEntrySizes: true,
    });
  } catch (err) {
    throw invalid(
      `The orchestration upload is not a readable zip archive (${(err as Error).message}). ` +
        'Upload a .zip file, e.g. made with `zip -r myjob.zip .` inside the folder.',
    );
  }
}

/** Reads the central directory and checks every entry's name, type and declared sizes. */
async function planEntries(zip: ZipFile, limits: ArchiveLimits): Promise<PlannedEntry[]> {
  if (zip.entryCount > limits.maxEntries) {
    throw tooLarge(
      `The orchestration zip has ${zip.entryCount} entries, more than the cap of ${limits.maxEntries}. ` +
        'Leave generated folders (node_modules, caches) out of the zip.',
      { entries: zip.entryCount, maxEntries: limits.maxEntries },
    );
  }
  const planned: PlannedEntry[] = [];
  const files = new Set<string>();
  const dirs = new Set<string>();
  let declaredTotal = 0;
  try {
    for await (const entry of zip.eachEntry()) {
      const name = yauzl.getFileNameLowLevel(
        entry.generalPurposeBitFlag,
        entry.fileNameRaw,
        entry.extraFields,
        false,
      );
      const path = safeRelativePath(name);
      const mode = (entry.externalFileAttributes >>> 16) & S_IFMT;
      if (mode === S_IFLNK) throw unsafe(name, 'is a symbolic link');
      if (mode !== 0 && mode !== S_IFREG && mode !== S_IFDIR)
        throw unsafe(name, 'is not a regular file or folder');
      if (path === '' || path === '__MACOSX' || path.startsWith(JUNK_PREFIX)) continue;
      const isDir = name.endsWith('/') || mode === S_IFDIR;
      if (!isDir) {
        if (entry.isEncrypted()) {
          throw invalid(
            `The orchestration zip entry "${name}" is encrypted. Zip it again without a password.`,
            {
              entry: name,
            },
          );
        }
        if (!entry.canDecodeFileData()) {
          throw invalid(
            `The orchestration zip entry "${name}" uses compression method ${entry.compressionMethod}, which is not ` +
              'supported. Zip it again with the standard deflate method (the default of `zip` and most tools).',
            { entry: name },
          );
        }
        declaredTotal += entry.uncompressedSize;
        if (declaredTotal > limits.maxTotalBytes) {
          throw tooLarge(
            `The orchestration zip expands to more than ${limits.maxTotalBytes} bytes (at entry "${name}"). ` +
              'Keep large data out of the zip and read it at run time instead.',
            { entry: name, maxTotalBytes: limits.maxTotalBytes },
          );
        }
        if (
          entry.uncompressedSize > limits.ratioMinBytes &&
          entry.uncompressedSize > entry.compressedSize * limits.maxRatio
        ) {
          throw tooLarge(
            `The orchestration zip entry "${name}" inflates from ${entry.compressedSize} to ${entry.uncompressedSize} bytes, ` +
              `over the ${limits.maxRatio}:1 compression-ratio cap (zip bomb guard). Remove it from the zip.`,
            { entry: name, maxRatio: limits.maxRatio },
          );
        }
        if (files.has(path) || dirs.has(path)) {
          throw invalid(`The orchestration zip has two entries for "${path}". Zip the folder again.`, {
            entry: name,
          });
        }
        files.add(path);
      } else {
        if (files.has(path)) {
          throw invalid(
            `The orchestration zip has both a file and a folder named "${path}". Zip the folder again.`,
            {
              entry: name,
            },
          );
        }
      }
      // Every ancestor is a folder; a file with that name elsewhere is a conflict.
      const parts = path.split('/');
      for (let i = 1; i <= (isDir ? parts.length : parts.length - 1); i++) {
        const ancestor = parts.slice(0, i).join('/');
        if (files.has(ancestor)) {
          throw invalid(
            `The orchestration zip has both a file and a folder named "${ancestor}". Zip the folder again.`,
            {
              entry: name,
            },
          );
        }
        dirs.add(ancestor);
      }
      planned.push({ entry, path, isDir });
    }
  } catch (err) {
    if (err instanceof ApiError) throw err;
    throw invalid(
      `The orchestration zip is damaged (${(err as Error).message}). Zip the folder again and re-upload.`,
    );
  }
  return planned;
}

/**
 * Inflates every file entry, counting the bytes that actually come out (headers can lie),
 * and writes them under `destDir` when one is given.
 */
async function inflateEntries(
  zip: ZipFile,
  planned: readonly PlannedEntry[],
  limits: ArchiveLimits,
  destDir: string | null,
): Promise<number> {
  let total = 0;
  for (const { entry, path, isDir } of planned) {
    const target = destDir === null ? null : resolve(destDir, path);
    // Defence in depth: the path was already cleaned, but never write outside destDir.
    if (target !== null && destDir !== null && !target.startsWith(destDir + sep)) {
      throw unsafe(path, 'resolves outside the zip root');
    }
    if (isDir) {
      if (target !== null) await mkdir(target, { recursive: true });
      continue;
    }
    const allowance = Math.max(limits.ratioMinBytes, entry.compressedSize * limits.maxRatio);
    if (target !== null) await mkdir(dirname(target), { recursive: true });
    // 'wx' never follows or overwrites something already there.
    const out = target === null ? null : await open(target, 'wx', 0o644);
    let written = 0;
    try {
      const stream = await zip.openReadStreamPromise(entry);
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        written += chunk.length;
        total += chunk.length;
        if (written > allowance || total > limits.maxTotalBytes) {
          stream.destroy();
          throw tooLarge(
            written > allowance
              ? `The orchestration zip entry "${path}" inflates past ${allowance} bytes from ${entry.compressedSize} compressed, ` +
                  `over the ${limits.maxRatio}:1 compression-ratio cap (zip bomb guard). Remove it from the zip.`
              : `The orchestration zip expands to more than ${limits.maxTotalBytes} bytes (at entry "${path}"). ` +
                  'Keep large data out of the zip and read it at run time instead.',
            { entry: path, maxRatio: limits.maxRatio, maxTotalBytes: limits.maxTotalBytes },
          );
        }
        if (out !== null) await out.write(chunk);
      }
    } catch (err) {
      if (err instanceof ApiError) throw err;
      const message = (err as Error).message;
      // yauzl checks inflated bytes against the header: more bytes than declared is a lie
      // in the bomb direction.
      if (/too many bytes/.test(message)) {
        throw tooLarge(
          `The orchestration zip entry "${path}" inflates to more bytes than its header declares (zip bomb guard). ` +
            'Zip the folder again with a standard tool.',
          { entry: path },
        );
      }
      throw invalid(
        `The orchestration zip entry "${path}" cannot be read (${message}). Zip the folder again.`,
        {
          entry: path,
        },
      );
    } finally {
      await out?.close();
    }
  }
  return total;
}

async function readArchive(
  zipPath: string,
  limits: ArchiveLimits,
  destDir: string | null,
): Promise<ArchiveManifest> {
  const zip = await openZip(zipPath);
  try {
    const planned = await planEntries(zip, limits);
    const files = planned.filter((p) => !p.isDir).map((p) => p.path);
    // Decide the entrypoint before inflating anything, so a zip without one costs no I/O.
    const entrypoint = selectEntrypoint(files);
    const totalBytes = await inflateEntries(zip, planned, limits, destDir);
    return { files, entrypoint, totalBytes };
  } finally {
    zip.close();
  }
}

/**
 * Validates an orchestration zip without writing anything: names, entry types, the
 * entrypoint rule and the bomb guards, inflating every entry to count its real size.
 *
 * @throws ApiError `invalid_archive`, `archive_unsafe_entry`, `archive_no_entrypoint` or
 * `archive_too_large`, each naming the bad entry and the fix.
 * @example
 * const { entrypoint } = await inspectArchive('/tmp/upload.zip');
 */
export async function inspectArchive(
  zipPath: string,
  limits: ArchiveLimits = DEFAULT_ARCHIVE_LIMITS,
): Promise<ArchiveManifest> {
  return readArchive(zipPath, limits, null);
}

/**
 * Validates and extracts an orchestration zip into `destDir` (created; it must not exist
 * yet). On any refusal `destDir` is removed again, so nothing is left behind.
 *
 * @throws ApiError the same codes as {@link inspectArchive}.
 */
export async function extractArchive(
  zipPath: string,
  destDir: string,
  limits: ArchiveLimits = DEFAULT_ARCHIVE_LIMITS,
): Promise<ArchiveManifest> {
  const root = resolve(destDir);
  await mkdir(root, { recursive: true });
  try {
    return await readArchive(zipPath, limits, root);
  } catch (err) {
    await rm(root, { recursive: true, force: true });
    throw err;
  }
}
