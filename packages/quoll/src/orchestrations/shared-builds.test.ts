import { describe, expect, it } from 'vitest';
import { SharedBuilds } from './shared-builds.js';

describe('SharedBuilds', () => {
  it('a second call for a running key joins it: one build, every line, the result marked reused', async () => {
    const builds = new SharedBuilds<{ value: number; reused: boolean }>();
    let started = 0;
    let finish!: () => void;
    const gate = new Promise<void>((resolve) => (finish = resolve));
    const first: string[] = [];
    const second: string[] = [];
    const a = builds.run(
      'k',
      (l) => first.push(l),
      async (print) => {
        started++;
        print('one');
        await gate;
        print('two');
        return { value: 7, reused: false };
      },
    );
    const b = builds.run(
      'k',
      (l) => second.push(l),
      () => Promise.reject(new Error('must not start')),
    );
    expect(builds.has('k')).toBe(true);
    finish();
    expect(await a).toEqual({ value: 7, reused: false });
    expect(await b).toEqual({ value: 7, reused: true });
    expect(started).toBe(1);
    expect(first).toEqual(['one', 'two']);
    expect(second).toEqual(['one', 'two']);
    expect(builds.has('k')).toBe(false);
  });

  it('a failed build is not kept: the next call builds again', async () => {
    const builds = new SharedBuilds<{ reused: boolean }>();
    await expect(builds.run('k', undefined, () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(builds.has('k')).toBe(false);
    expect(await builds.run('k', undefined, () => Promise.resolve({ reused: false }))).toEqual({
      reused: false,
    });
  });
});
