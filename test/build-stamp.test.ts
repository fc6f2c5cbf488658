import { mkdir, mkdtemp, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runStep, type BuildStep } from '../scripts/build-stamp.js';
import { BUILD_STEPS } from '../scripts/build.js';

describe('a build step with a content stamp', () => {
  let root: string;
  let runs: number;
  let failNext: boolean;
  /** Concatenates src/* into out/bundle.txt, as a bundler would (tests in src/ are left out). */
  const step = (): BuildStep => ({
    name: 'bundle',
    inputs: ['src', 'build.config'],
    outputs: ['out'],
    ignore: (path) => path.endsWith('.test.txt'),
    run: async () => {
      runs += 1;
      if (failNext) {
        failNext = false;
        await writeFile(join(root, 'out', 'bundle.txt'), 'half-written');
        throw new Error('the bundler failed');
      }
      const a = await readFile(join(root, 'src', 'a.txt'), 'utf8');
      const b = await readFile(join(root, 'src', 'deep', 'b.txt'), 'utf8').catch(() => '');
      await mkdir(join(root, 'out'), { recursive: true });
      await writeFile(join(root, 'out', 'bundle.txt'), a + b);
    },
  });
  const build = (force = false) => runStep(step(), { root, stampDir: join(root, '.stamps'), force });

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'quoll-build-stamp-'));
    runs = 0;
    failNext = false;
    await mkdir(join(root, 'src', 'deep'), { recursive: true });
    await writeFile(join(root, 'src', 'a.txt'), 'a');
    await writeFile(join(root, 'src', 'deep', 'b.txt'), 'b');
    await writeFile(join(root, 'build.config'), 'minify');
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('runs the first time, then not again while nothing changed', async () => {
    expect(await build()).toBe('built');
    expect(await build()).toBe('up to date');
    expect(await build()).toBe('up to date');
    expect(runs).toBe(1);
    expect(await readFile(join(root, 'out', 'bundle.txt'), 'utf8')).toBe('ab');
  });

  it('runs again when an input file, even one in a subfolder, holds other bytes', async () => {
    await build();
    await writeFile(join(root, 'src', 'deep', 'b.txt'), 'B');
    expect(await build()).toBe('built');
    expect(await readFile(join(root, 'out', 'bundle.txt'), 'utf8')).toBe('aB');
    await writeFile(join(root, 'build.config'), 'no-minify');
    expect(await build()).toBe('built');
    expect(runs).toBe(3);
  });

  it('runs again when an input file is added, removed or renamed', async () => {
    await build();
    await writeFile(join(root, 'src', 'c.txt'), '');
    expect(await build()).toBe('built');
    await rm(join(root, 'src', 'c.txt'));
    expect(await build()).toBe('built');
    await rm(join(root, 'src', 'deep', 'b.txt'));
    await writeFile(join(root, 'src', 'b.txt'), 'b');
    expect(await build()).toBe('built');
    expect(runs).toBe(4);
  });

  it('runs again when an output is deleted or edited', async () => {
    await build();
    await rm(join(root, 'out'), { recursive: true });
    expect(await build()).toBe('built');
    await writeFile(join(root, 'out', 'bundle.txt'), 'edited by hand');
    expect(await build()).toBe('built');
    await writeFile(join(root, 'out', 'stray.txt'), 'left by an older build');
    expect(await build()).toBe('built');
    expect(runs).toBe(4);
  });

  it('goes by content: new file times with the same bytes, or an ignored file, rebuild nothing', async () => {
    await build();
    const later = new Date(Date.now() + 60_000);
    await utimes(join(root, 'src', 'a.txt'), later, later);
    await utimes(join(root, 'out', 'bundle.txt'), later, later);
    await writeFile(join(root, 'src', 'a.txt'), 'a');
    await writeFile(join(root, 'src', 'a.test.txt'), 'a test of a');
    expect(await build()).toBe('up to date');
    expect(runs).toBe(1);
  });

  it('runs again after a failed run, whose half-written output it does not trust', async () => {
    await build();
    await writeFile(join(root, 'src', 'a.txt'), 'A');
    failNext = true;
    await expect(build()).rejects.toThrow('the bundler failed');
    // Put back the input the good output was built from: the output is still the failed one's.
    await writeFile(join(root, 'src', 'a.txt'), 'a');
    expect(await build()).toBe('built');
    expect(await readFile(join(root, 'out', 'bundle.txt'), 'utf8')).toBe('ab');
    expect(runs).toBe(3);
  });

  it('runs whatever its stamp says when forced', async () => {
    await build();
    expect(await build(true)).toBe('built');
    expect(runs).toBe(2);
  });
});

describe("the repository's build steps", () => {
  const step = (name: string): BuildStep => {
    const found = BUILD_STEPS.find((s) => s.name === name);
    if (found === undefined) throw new Error(`no build step ${name}`);
    return found;
  };

  it('stamp every source each step builds from, and the tools', () => {
    for (const s of BUILD_STEPS) {
      expect(s.inputs, s.name).toEqual(
        expect.arrayContaining(['package-lock.json', 'scripts/build.ts', 'scripts/build-stamp.ts']),
      );
    }
    expect(step('client-cjs').inputs).toEqual(
      expect.arrayContaining([
        'packages/client/src',
        'packages/client/tsconfig.cjs.json',
        'tsconfig.base.json',
      ]),
    );
    expect(step('python-sdk').inputs).toEqual(
      expect.arrayContaining([
        'packages/python/src/quoll',
        'packages/python/pyproject.toml',
        'packages/client/src/wire/error-codes.ts',
        'scripts/build-python-sdk.ts',
      ]),
    );
    // The console bundles the client as built (its ES modules), so a client change rebuilds it.
    expect(step('console').inputs).toEqual(
      expect.arrayContaining([
        'packages/console/app',
        'packages/console/vite.config.ts',
        'packages/client/dist',
      ]),
    );
    const consoleIgnores = step('console').ignore ?? (() => false);
    expect(consoleIgnores('packages/client/dist/index.js')).toBe(false);
    expect(consoleIgnores('packages/client/dist/cjs/index.js')).toBe(true);
    expect(consoleIgnores('packages/console/app/main.tsx')).toBe(false);
  });

  it('write where the server and the packages look for what they built', () => {
    expect(step('client-cjs').outputs).toEqual(['packages/client/dist/cjs']);
    expect(step('python-sdk').outputs).toEqual(['packages/quoll/python-sdk']);
    expect(step('console').outputs).toEqual(['packages/quoll/console']);
  });
});
