import { describe, expect, it } from 'vitest';
import { ApiError } from '../server/api-error.js';
import { selectEntrypoint } from './select-entrypoint.js';

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
