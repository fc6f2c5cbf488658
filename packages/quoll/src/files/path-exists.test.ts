import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { pathExists } from './path-exists.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'quoll-path-exists-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('pathExists', () => {
  it('is true for a file, a folder and a link to one', async () => {
    writeFileSync(join(dir, 'file'), 'x');
    symlinkSync(join(dir, 'file'), join(dir, 'link'));
    expect(await pathExists(join(dir, 'file'))).toBe(true);
    expect(await pathExists(dir)).toBe(true);
    expect(await pathExists(join(dir, 'link'))).toBe(true);
  });

  it('is false for a missing path, a dangling link and a path under a file', async () => {
    symlinkSync(join(dir, 'gone'), join(dir, 'dangling'));
    writeFileSync(join(dir, 'file'), 'x');
    expect(await pathExists(join(dir, 'missing'))).toBe(false);
    expect(await pathExists(join(dir, 'dangling'))).toBe(false);
    expect(await pathExists(join(dir, 'file', 'below'))).toBe(false);
  });
});
