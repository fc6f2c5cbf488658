import { describe, expect, it } from 'vitest';
import { ApiError } from '../errors/index.js';
import { entrypointRuntime, selectEntrypoint } from './select-entrypoint.js';

function refusal(files: string[]): ApiError {
  try {
    selectEntrypoint(files);
  } catch (err) {
    if (err instanceof ApiError) return err;
    throw err;
  }
  throw new Error(`expected a refusal for ${files.join(', ')}`);
}

describe('selectEntrypoint', () => {
  it('prefers main.ts at the root over a main.ts in a subdirectory', () => {
    expect(selectEntrypoint(['sub/main.ts', 'main.ts', 'data/x.json'])).toBe('main.ts');
  });

  it('prefers main.ts, then main.mts, main.js, main.mjs when several sit at the root', () => {
    expect(selectEntrypoint(['main.mjs', 'main.js', 'main.mts', 'main.ts'])).toBe('main.ts');
    expect(selectEntrypoint(['main.mjs', 'main.js'])).toBe('main.js');
  });

  it('takes the shallowest main in a subdirectory when the root has none', () => {
    expect(selectEntrypoint(['a/b/main.ts', 'z/main.js', 'a/helper.ts'])).toBe('z/main.js');
    expect(selectEntrypoint(['job/main.ts', 'job/data/zonea.json'])).toBe('job/main.ts');
  });

  it('breaks a tie at equal depth by name preference, then path', () => {
    expect(selectEntrypoint(['b/main.ts', 'a/main.js'])).toBe('b/main.ts');
    expect(selectEntrypoint(['b/main.ts', 'a/main.ts'])).toBe('a/main.ts');
  });

  it('takes a subdirectory main over a single root script', () => {
    expect(selectEntrypoint(['run.ts', 'sub/main.ts'])).toBe('sub/main.ts');
  });

  it('takes the single .js or .ts script at the root when there is no main', () => {
    expect(selectEntrypoint(['inference.js', 'data/x.json', 'lib/util.ts'])).toBe('inference.js');
    expect(selectEntrypoint(['job.ts', 'types.d.ts'])).toBe('job.ts');
  });

  it('ignores main files inside node_modules', () => {
    expect(selectEntrypoint(['node_modules/x/main.js', 'run.js'])).toBe('run.js');
  });

  it('refuses two root scripts without a main, naming them', () => {
    const err = refusal(['a.ts', 'b.ts']);
    expect(err.code).toBe('archive_no_entrypoint');
    expect(err.message).toContain('a.ts, b.ts');
    expect(err.message).toContain('main.ts');
  });

  it('refuses an archive with no script at all, and an empty archive', () => {
    expect(refusal(['data.csv', 'lib/util.ts']).code).toBe('archive_no_entrypoint');
    const empty = refusal([]);
    expect(empty.code).toBe('archive_no_entrypoint');
    expect(empty.message).toContain('empty');
  });
});

describe('selectEntrypoint for Python (the seed rule)', () => {
  it('takes main.py at the root, else the only .py at the root', () => {
    expect(selectEntrypoint(['main.py', 'helper.py', 'requirements.txt'])).toBe('main.py');
    expect(selectEntrypoint(['job.py', 'requirements.txt', 'data/x.csv'])).toBe('job.py');
    expect(entrypointRuntime('main.py')).toBe('python');
    expect(entrypointRuntime('.quoll/entry.mjs')).toBe('node');
  });

  it('takes the shallowest main.py in a subfolder, like main.ts', () => {
    expect(selectEntrypoint(['job/main.py', 'job/helper.py', 'job/requirements.txt'])).toBe('job/main.py');
    expect(selectEntrypoint(['a/b/main.py', 'z/main.py'])).toBe('z/main.py');
  });

  it('ignores vendored folders (venv, site-packages, __pycache__)', () => {
    expect(selectEntrypoint(['venv/lib/site-packages/x/main.py', 'run.py'])).toBe('run.py');
  });

  it('refuses a zip with both a Python and a TypeScript entrypoint, naming both', () => {
    const err = refusal(['main.py', 'main.ts']);
    expect(err.code).toBe('archive_two_entrypoints');
    expect(err.message).toContain('main.ts');
    expect(err.message).toContain('main.py');
    expect(refusal(['job.py', 'job.js']).code).toBe('archive_two_entrypoints');
  });

  it('refuses two root .py scripts without a main.py, naming them', () => {
    const err = refusal(['a.py', 'b.py']);
    expect(err.code).toBe('archive_no_entrypoint');
    expect(err.message).toContain('a.py, b.py');
    expect(err.message).toContain('main.py');
  });

  it('a main in one language wins over several loose scripts of the other', () => {
    expect(selectEntrypoint(['main.py', 'a.js', 'b.js'])).toBe('main.py');
  });
});
