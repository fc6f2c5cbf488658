import {
  linkSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  closeSync,
  ftruncateSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { measureDiskUsage } from './disk-usage.js';

let root: string;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'quoll-disk-usage-'));
});
afterEach(() => {
  rmSync(root, { recursive: true, force: true });
});

const MiB = 1024 ** 2;

describe('measureDiskUsage', () => {
  it('counts allocated blocks: a sparse file counts what it uses, a hard link once, a link not followed', async () => {
    const dir = join(root, 'run');
    mkdirSync(join(dir, 'sub'), { recursive: true });
    writeFileSync(join(dir, 'sub', 'data'), Buffer.alloc(MiB, 1));
    linkSync(join(dir, 'sub', 'data'), join(dir, 'again'));
    // A 1 GiB sparse file holds (almost) nothing.
    const fd = openSync(join(dir, 'sparse'), 'w');
    ftruncateSync(fd, 1024 * MiB);
    closeSync(fd);
    // A link to a large folder elsewhere counts as a link.
    mkdirSync(join(root, 'elsewhere'));
    writeFileSync(join(root, 'elsewhere', 'big'), Buffer.alloc(4 * MiB, 1));
    symlinkSync(join(root, 'elsewhere'), join(dir, 'link'));
    const usage = await measureDiskUsage(dir, { maxEntries: 1000 });
    expect(usage.entries).toBe(6);
    expect(usage.truncated).toBe(false);
    expect(usage.bytes).toBeGreaterThanOrEqual(MiB);
    expect(usage.bytes).toBeLessThan(MiB + 256 * 1024);
  });

  it('stops at maxEntries (truncated) and once past stopAtBytes; a missing folder holds nothing', async () => {
    const dir = join(root, 'many');
    mkdirSync(dir);
    for (let i = 0; i < 600; i++) writeFileSync(join(dir, `f${i}`), 'x');
    const capped = await measureDiskUsage(dir, { maxEntries: 300 });
    expect(capped).toMatchObject({ entries: 300, truncated: true });
    const over = await measureDiskUsage(dir, { maxEntries: 10_000, stopAtBytes: 8192 });
    expect(over.truncated).toBe(false);
    expect(over.bytes).toBeGreaterThan(8192);
    expect(over.entries).toBeLessThan(601);
    expect(await measureDiskUsage(join(root, 'nope'), { maxEntries: 10 })).toEqual({
      bytes: 0,
      entries: 0,
      truncated: false,
    });
  });
});
