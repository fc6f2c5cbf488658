import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AuthError } from '../errors/index.js';
import { resolveClientOptions } from './resolve-client-options.js';

const dirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'quoll-creds-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('resolveClientOptions', () => {
  it('prefers explicit options, then QUOLL_URL + QUOLL_TOKEN, then $QUOLL_HOME, then ./.quoll', () => {
    const cwd = tmp();
    const home = tmp();
    mkdirSync(join(cwd, '.quoll'));
    writeFileSync(
      join(cwd, '.quoll', 'credentials.json'),
      JSON.stringify({ url: 'http://cwd', token: 't-cwd' }),
    );
    writeFileSync(join(home, 'credentials.json'), JSON.stringify({ url: 'http://home', token: 't-home' }));
    expect(
      resolveClientOptions({
        url: 'http://x',
        token: 'tx',
        env: { QUOLL_URL: 'http://env', QUOLL_TOKEN: 'te' },
        cwd,
      }),
    ).toEqual({
      url: 'http://x',
      token: 'tx',
    });
    expect(
      resolveClientOptions({ env: { QUOLL_URL: 'http://env', QUOLL_TOKEN: 'te', QUOLL_HOME: home }, cwd }),
    ).toEqual({
      url: 'http://env',
      token: 'te',
    });
    expect(resolveClientOptions({ env: { QUOLL_HOME: home }, cwd })).toEqual({
      url: 'http://home',
      token: 't-home',
    });
    expect(resolveClientOptions({ env: {}, cwd })).toEqual({ url: 'http://cwd', token: 't-cwd' });
  });

  it('a missing or broken credentials file is an AuthError that names the way out', () => {
    const cwd = tmp();
    expect(() => resolveClientOptions({ env: {}, cwd })).toThrow(AuthError);
    mkdirSync(join(cwd, '.quoll'));
    writeFileSync(join(cwd, '.quoll', 'credentials.json'), '{ not json');
    expect(() => resolveClientOptions({ env: {}, cwd })).toThrow(/credentials\.json is not/);
  });
});
