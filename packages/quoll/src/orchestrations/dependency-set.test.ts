import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ApiError } from '../errors/index.js';
import { readDependencySet } from './dependency-set.js';

let files: string;
beforeEach(() => {
  files = mkdtempSync(join(tmpdir(), 'quoll-deps-'));
});
afterEach(() => rmSync(files, { recursive: true, force: true }));

function write(path: string, text: string): void {
  mkdirSync(join(files, path, '..'), { recursive: true });
  writeFileSync(join(files, path), text);
}

function manifest(dependencies: Record<string, string>, at = ''): void {
  write(at === '' ? 'package.json' : `${at}/package.json`, JSON.stringify({ dependencies }));
}

async function refusal(entry = 'main.js', code = 'invalid_archive'): Promise<ApiError> {
  const err = await readDependencySet(files, entry, 20).then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ApiError);
  expect((err as ApiError).code).toBe(code);
  return err as ApiError;
}

describe('readDependencySet: dependencies in the zip', () => {
  it('resolves file:, link: and relative paths inside the zip, folders and tarballs, hashing their content', async () => {
    write('dep/package.json', '{"name":"dep","version":"1.0.0"}');
    write('other/package.json', '{"name":"other","version":"1.0.0"}');
    write('vendor/tar-dep-1.0.0.tgz', 'not really a tarball');
    manifest({
      dep: 'file:./dep',
      other: 'link:other',
      tarred: './vendor/tar-dep-1.0.0.tgz',
      'is-number': '7.0.0',
    });
    const set = await readDependencySet(files, 'main.js', 20);
    expect(set?.dependencies).toEqual({
      dep: 'file:dep',
      other: 'file:other',
      tarred: 'file:vendor/tar-dep-1.0.0.tgz',
      'is-number': '7.0.0',
    });
    expect(set?.local).toEqual([
      { name: 'dep', from: 'dep' },
      { name: 'other', from: 'other' },
      { name: 'tarred', from: 'vendor/tar-dep-1.0.0.tgz' },
    ]);
    expect(set?.localRoot).toBe(files);
    // Same names, changed content: another environment.
    write('dep/index.js', 'module.exports = 2;');
    expect((await readDependencySet(files, 'main.js', 20))?.hash).not.toBe(set?.hash);
  });

  it('resolves paths from the package.json beside a nested entrypoint, up to the zip root', async () => {
    write('shared/package.json', '{"name":"shared","version":"1.0.0"}');
    manifest({ shared: 'file:../shared' }, 'app');
    const set = await readDependencySet(files, 'app/main.js', 20);
    expect(set?.local).toEqual([{ name: 'shared', from: 'shared' }]);
  });

  it('refuses a path outside the zip, an absolute path, a missing path and a folder without package.json', async () => {
    manifest({ escape: 'file:../outside' });
    expect((await refusal()).message).toMatch(/"escape": "file:\.\.\/outside" .* points outside the zip/);
    manifest({ abs: 'file:/etc/passwd' });
    expect((await refusal()).message).toMatch(/absolute path/);
    manifest({ home: '~/dep' });
    expect((await refusal()).message).toMatch(/absolute path/);
    manifest({ gone: 'file:./gone' });
    expect((await refusal()).message).toMatch(/is not in the zip/);
    write('bare/readme.txt', 'no manifest');
    manifest({ bare: 'file:bare' });
    expect((await refusal()).message).toMatch(/folder without a package.json/);
  });
});

describe('readDependencySet: git sources', () => {
  it('refuses a git dependency in package.json, in a lockfile and in a package of the zip, naming it', async () => {
    for (const spec of [
      'git+file:///quoll/local/libx/repo.git#HEAD',
      'git+https://example.com/x.git',
      'git://example.com/x.git',
      'github:user/repo',
      'user/repo#main',
      'https://example.com/x.git',
    ]) {
      manifest({ evil: spec });
      const err = await refusal('main.js', 'dependency_source_refused');
      expect(err.message).toContain(`"evil": "${spec}"`);
      expect(err.details).toMatchObject({ file: 'package.json', dependency: 'evil' });
    }
    manifest({ ok: '^1.0.0' });
    write(
      'package-lock.json',
      JSON.stringify({
        lockfileVersion: 3,
        packages: {
          'node_modules/ok': { version: '1.0.0', resolved: 'git+ssh://git@example.com/ok.git#abc' },
        },
      }),
    );
    expect((await refusal('main.js', 'dependency_source_refused')).details).toMatchObject({
      file: 'package-lock.json',
    });
    rmSync(join(files, 'package-lock.json'));
    write(
      'libx/package.json',
      JSON.stringify({ name: 'libx', dependencies: { yy: 'git+file:///quoll/local/x.git' } }),
    );
    manifest({ libx: 'file:./libx' });
    expect((await refusal('main.js', 'dependency_source_refused')).message).toMatch(/"yy"/);
    // Registry ranges, aliases, tarball URLs and paths still pass.
    write('libx/package.json', JSON.stringify({ name: 'libx', dependencies: { yy: '^2.0.0' } }));
    manifest({ a: '^1.2.3', b: 'npm:@scope/pkg@1', c: 'https://example.com/c.tgz', libx: 'file:./libx' });
    expect(await readDependencySet(files, 'main.js', 20)).not.toBeNull();
  });
});
