import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DirectLauncher, NO_LIMITS } from '../runner/index.js';
import type { LaunchSpec } from '../runner/index.js';
import { InstallError } from './install-error.js';
import { runInstallStep } from './run-install-step.js';

let root: string;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'quoll-install-step-'));
});
afterEach(() => {
  rmSync(root, { recursive: true, force: true });
});

const MiB = 1024 ** 2;

/** An "installer" (node -e) that writes `files` files of 256 KiB into `where`, then exits 0. */
function spec(where: string, files: number, diskBytes: number | null): LaunchSpec {
  const tmp = join(root, 'build');
  mkdirSync(tmp, { recursive: true });
  const source = `const { writeFileSync } = require('node:fs');
    for (let i = 0; i < ${files}; i++) writeFileSync(require('node:path').join(${JSON.stringify(where)}, 'f' + i), Buffer.alloc(256 * 1024, 1));
    console.log('installed');`;
  return {
    runtime: 'npm',
    warm: null,
    argv: [process.execPath, '-e', source],
    entry: process.execPath,
    args: [],
    runDir: tmp,
    env: { PATH: process.env.PATH ?? '' },
    runEnv: {},
    user: null,
    binds: [{ host: join(root, 'build-cache'), inside: join(root, 'build-cache'), readOnly: false }],
    limits: { ...NO_LIMITS, diskBytes },
  };
}

function step(lines: string[], diskDirs?: string[]): Parameters<typeof runInstallStep>[2] {
  return {
    print: (line) => lines.push(line),
    signal: undefined,
    what: 'npm install',
    isErrorLine: () => true,
    ...(diskDirs !== undefined ? { diskDirs } : {}),
  };
}

describe('runInstallStep disk limit', () => {
  it('an install that writes past its disk limit in its build folder fails with the reason', async () => {
    const s = spec(join(root, 'build'), 16, MiB);
    const lines: string[] = [];
    const err = await runInstallStep(new DirectLauncher(), s, step(lines)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InstallError);
    expect((err as InstallError).message).toBe('npm install failed: disk limit exceeded (1048576 bytes)');
    expect((err as InstallError).firstLines).toBe('disk limit exceeded (1048576 bytes)');
  });

  it('counts the install’s own cache with its build folder when told to', async () => {
    const cache = join(root, 'build-cache');
    const s = spec(cache, 16, 3 * MiB);
    const err = await runInstallStep(new DirectLauncher(), s, step([], [s.runDir, cache])).catch(
      (e: unknown) => e,
    );
    expect((err as Error).message).toBe('npm install failed: disk limit exceeded (3145728 bytes)');
    expect(existsSync(cache)).toBe(true);
  });

  it('an install under its limit, or without one, is untouched', async () => {
    const lines: string[] = [];
    await runInstallStep(new DirectLauncher(), spec(join(root, 'build'), 2, 4 * MiB), step(lines));
    expect(lines).toEqual(['installed']);
    await runInstallStep(new DirectLauncher(), spec(join(root, 'build'), 16, null), step([]));
  });
});
