import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createZip } from '../../../../test/support/zip-builder.js';
import type { ZipEntrySpec } from '../../../../test/support/zip-builder.js';
import { ApiError } from '../errors/index.js';
import { DEFAULT_ARCHIVE_LIMITS, extractArchive, inspectArchive } from './zip-archive.js';
import type { ArchiveLimits } from './zip-archive.js';

let dir: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'quoll-zip-'));
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

async function zipFile(entries: ZipEntrySpec[]): Promise<string> {
  const path = join(dir, 'upload.zip');
  writeFileSync(path, await createZip(entries));
  return path;
}

/** Runs inspect and extract on the same zip and checks both refuse it the same way, leaving no files. */
async function expectRefused(
  zipPath: string,
  code: string,
  limits: ArchiveLimits = DEFAULT_ARCHIVE_LIMITS,
): Promise<ApiError> {
  const inspected = await inspectArchive(zipPath, limits).then(
    () => null,
    (err: unknown) => err,
  );
  expect(inspected).toBeInstanceOf(ApiError);
  expect((inspected as ApiError).code).toBe(code);
  const dest = join(dir, 'out');
  const extracted = await extractArchive(zipPath, dest, limits).then(
    () => null,
    (err: unknown) => err,
  );
  expect((extracted as ApiError).code).toBe(code);
  // Nothing left behind: only the upload itself is in the temp dir.
  expect(readdirSync(dir)).toEqual(['upload.zip']);
  return inspected as ApiError;
}

const main = { path: 'main.ts', content: 'console.log("hi");' };

describe('inspectArchive / extractArchive', () => {
  it('extracts files and folders and reports the entrypoint and real size', async () => {
    const path = await zipFile([
      main,
      { path: 'data/', directory: true },
      { path: 'data/zonea.json', content: '{"a":1}' },
      { path: '__MACOSX/._main.ts', content: 'junk' },
    ]);
    const manifest = await extractArchive(path, join(dir, 'out'));
    expect(manifest).toEqual({
      files: ['main.ts', 'data/zonea.json'],
      entrypoint: 'main.ts',
      totalBytes: 25,
    });
    expect(readFileSync(join(dir, 'out', 'data', 'zonea.json'), 'utf8')).toBe('{"a":1}');
    expect(readdirSync(join(dir, 'out')).sort()).toEqual(['data', 'main.ts']);
    expect((await inspectArchive(path)).entrypoint).toBe('main.ts');
  });

  it('refuses a file that is not a zip', async () => {
    const path = join(dir, 'upload.zip');
    writeFileSync(path, 'this is not a zip file at all');
    const err = await expectRefused(path, 'invalid_archive');
    expect(err.message).toContain('not a readable zip');
  });

  it('refuses an empty zip as having no entrypoint', async () => {
    const err = await expectRefused(await zipFile([]), 'archive_no_entrypoint');
    expect(err.message).toContain('empty');
  });

  it('refuses a zip without an entrypoint', async () => {
    await expectRefused(await zipFile([{ path: 'data.csv', content: 'a,b' }]), 'archive_no_entrypoint');
  });

  it('refuses an entry that climbs out with ../, naming it', async () => {
    const err = await expectRefused(
      await zipFile([main, { path: '../evil.js', content: 'x' }]),
      'archive_unsafe_entry',
    );
    expect(err.message).toContain('"../evil.js"');
    expect(err.details).toEqual({ entry: '../evil.js' });
  });

  it('refuses a ../ hidden in the middle of a path', async () => {
    await expectRefused(
      await zipFile([main, { path: 'data/../../evil.js', content: 'x' }]),
      'archive_unsafe_entry',
    );
  });

  it('refuses an absolute path and a drive letter', async () => {
    const abs = await expectRefused(
      await zipFile([main, { path: '/abs.js', content: 'x' }]),
      'archive_unsafe_entry',
    );
    expect(abs.message).toContain('absolute');
    rmSync(join(dir, 'upload.zip'));
    const drive = await expectRefused(
      await zipFile([main, { path: 'C:/win.js', content: 'x' }]),
      'archive_unsafe_entry',
    );
    expect(drive.message).toContain('drive letter');
  });

  it('refuses a backslash path that climbs out', async () => {
    await expectRefused(await zipFile([main, { path: '..\\evil.js', content: 'x' }]), 'archive_unsafe_entry');
  });

  it('refuses a symlink entry even when its target looks harmless', async () => {
    const err = await expectRefused(
      await zipFile([main, { path: 'link', symlinkTarget: '/etc/passwd' }]),
      'archive_unsafe_entry',
    );
    expect(err.message).toContain('symbolic link');
  });

  it('refuses a zip bomb by compression ratio', async () => {
    const bomb = Buffer.alloc(8 * 1024 * 1024); // zeros deflate about 1000:1
    const err = await expectRefused(
      await zipFile([main, { path: 'zeros.bin', content: bomb }]),
      'archive_too_large',
    );
    expect(err.message).toContain('zeros.bin');
    expect(err.message).toContain('200:1');
  });

  it('refuses a zip whose entries add up past the total size cap', async () => {
    const limits = { ...DEFAULT_ARCHIVE_LIMITS, maxTotalBytes: 64 * 1024 };
    const chunk = (seed: number): Buffer =>
      Buffer.from(Array.from({ length: 40 * 1024 }, (_, i) => (i * seed) % 251));
    const err = await expectRefused(
      await zipFile([main, { path: 'a.bin', content: chunk(7) }, { path: 'b.bin', content: chunk(13) }]),
      'archive_too_large',
      limits,
    );
    expect(err.message).toContain('b.bin');
  });

  it('counts real inflated bytes rather than trusting the headers', async () => {
    // Declared sizes are 0 in the central directory, actual data is 40 KiB of zeros.
    const zip = await createZip([main, { path: 'liar.bin', content: Buffer.alloc(40 * 1024) }]);
    const cd = zip.lastIndexOf(Buffer.from('liar.bin')) - 46; // central directory header of liar.bin
    zip.writeUInt32LE(0, cd + 24); // uncompressed size
    writeFileSync(join(dir, 'upload.zip'), zip);
    await expectRefused(join(dir, 'upload.zip'), 'archive_too_large');
  });

  it('refuses a zip with more entries than the cap', async () => {
    const limits = { ...DEFAULT_ARCHIVE_LIMITS, maxEntries: 3 };
    const files = Array.from({ length: 4 }, (_, i) => ({ path: `f${i}.txt`, content: 'x' }));
    await expectRefused(await zipFile([main, ...files]), 'archive_too_large', limits);
  });
});
