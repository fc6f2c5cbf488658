import { spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { findExecutable } from './find-executable.js';

let root: string;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'quoll-run-dir-'));
});
afterEach(() => {
  rmSync(root, { recursive: true, force: true });
});

const isRoot = process.getuid?.() === 0;
const setpriv = findExecutable('setpriv', process.env.PATH);

describe('removeRunDir', () => {
  // Root ignores permissions, so the server this protects (one that is not root, owning the
  // run's files) is played by `nobody` when the tests run as root.
  it.skipIf(isRoot && setpriv === null)(
    'removes a run directory whose run hid a folder from its owner (chmod 000), where a plain rm fails',
    () => {
      if (isRoot) chownSync(root, 65534, 65534);
      const module = resolve(import.meta.dirname, 'run-directory.ts');
      const script = `
        import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
        import { rm } from 'node:fs/promises';
        import { removeRunDir } from ${JSON.stringify(module)};
        const make = (dir) => {
          mkdirSync(dir + '/hide/deeper', { recursive: true });
          writeFileSync(dir + '/hide/deeper/data', 'x');
          chmodSync(dir + '/hide/deeper', 0); chmodSync(dir + '/hide', 0);
        };
        make(${JSON.stringify(join(root, 'plain'))});
        const plain = await rm(${JSON.stringify(join(root, 'plain'))}, { recursive: true, force: true }).then(() => 'removed', (e) => e.code);
        make(${JSON.stringify(join(root, 'run'))});
        await removeRunDir(${JSON.stringify(join(root, 'run'))});
        console.log(plain, existsSync(${JSON.stringify(join(root, 'run'))}));`;
      const argv = [process.execPath, '--import', 'tsx', '--input-type=module', '-e', script];
      const cmd = isRoot
        ? [setpriv as string, '--reuid=65534', '--regid=65534', '--clear-groups', ...argv]
        : argv;
      const r = spawnSync(cmd[0] as string, cmd.slice(1), { encoding: 'utf8', timeout: 60_000 });
      expect(r.stderr).toBe('');
      expect(r.stdout.trim()).toBe('EACCES false');
    },
  );

  it('removes nothing outside the directory and is fine with one already gone', async () => {
    const { removeRunDir } = await import('./run-directory.js');
    await removeRunDir(join(root, 'never-made'));
    expect(existsSync(root)).toBe(true);
  });
});
