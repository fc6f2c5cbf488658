import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { hashDependencySet } from './dependency-set.js';
import type { DependencySet } from './dependency-set.js';
import { EnvCache, InstallError } from './env-cache.js';

let dir: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'quoll-envs-'));
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function depSet(dependencies: Record<string, string>): DependencySet {
  return {
    dependencies,
    lockfile: null,
    hash: hashDependencySet(dependencies, null, 20),
    source: 'package.json',
  };
}

describe('hashDependencySet', () => {
  it('ignores key order but not ranges, lockfile or Node major', () => {
    const base = hashDependencySet({ a: '1', b: '2' }, null, 20);
    expect(hashDependencySet({ b: '2', a: '1' }, null, 20)).toBe(base);
    expect(hashDependencySet({ a: '1', b: '3' }, null, 20)).not.toBe(base);
    expect(hashDependencySet({ a: '1', b: '2' }, '{}', 20)).not.toBe(base);
    expect(hashDependencySet({ a: '1', b: '2' }, null, 22)).not.toBe(base);
  });
});

describe('EnvCache', () => {
  it('installs a dependency set once, and concurrent requests share that one npm run', async () => {
    const envs = new EnvCache({ envsDir: dir });
    const deps = depSet({ 'is-number': '7.0.0' });
    const linesA: string[] = [];
    const linesB: string[] = [];
    const [a, b] = await Promise.all([
      envs.ensure(deps, { log: (l) => linesA.push(l) }),
      envs.ensure(deps, { log: (l) => linesB.push(l) }),
    ]);
    expect(envs.installCount).toBe(1);
    expect(a.dir).toBe(join(dir, deps.hash));
    expect(b.dir).toBe(a.dir);
    expect(existsSync(join(a.nodeModulesDir, 'is-number', 'package.json'))).toBe(true);
    // Both callers see npm's output, the second by replay.
    expect(linesA[0]).toMatch(/^\$ npm install/);
    expect(linesB).toEqual(linesA);

    const again = await envs.ensure(deps);
    expect(again.reused).toBe(true);
    expect(envs.installCount).toBe(1);
    // A new cache (a restarted server) finds the finished environment on disk.
    const restarted = new EnvCache({ envsDir: dir });
    expect((await restarted.ensure(deps)).reused).toBe(true);
    expect(restarted.installCount).toBe(0);
  });

  it('does not cache a failed install: the error names the problem and the next call runs npm again', async () => {
    const envs = new EnvCache({ envsDir: dir });
    const deps = depSet({ 'is-number': '999.999.999' });
    const first = await envs.ensure(deps).then(
      () => null,
      (err: unknown) => err,
    );
    expect(first).toBeInstanceOf(InstallError);
    expect((first as InstallError).firstLines).toMatch(/is-number|ETARGET|notarget/i);
    expect(readdirSync(dir)).toEqual([]);
    await expect(envs.ensure(deps)).rejects.toBeInstanceOf(InstallError);
    expect(envs.installCount).toBe(2);
  });

  it('an aborted install leaves nothing cached', async () => {
    const envs = new EnvCache({ envsDir: dir });
    const controller = new AbortController();
    const pending = envs.ensure(depSet({ 'is-number': '7.0.0' }), {
      signal: controller.signal,
      log: () => controller.abort(),
    });
    await expect(pending).rejects.toThrow();
    expect(readdirSync(dir)).toEqual([]);
  });

  it('an aborted install also stops what npm started (its whole process group)', async () => {
    // A stand-in npm that starts a long-lived child (like an install script) and reports its pid.
    const fakeNpm = join(dir, 'fake-npm.sh');
    const pidFile = join(dir, 'child.pid');
    writeFileSync(fakeNpm, `#!/bin/sh\nsleep 300 &\necho $! > "${pidFile}"\necho started\nwait\n`);
    chmodSync(fakeNpm, 0o755);
    const envsDir = join(dir, 'envs');
    const envs = new EnvCache({ envsDir, npmCommand: fakeNpm });
    const controller = new AbortController();
    const pending = envs.ensure(depSet({ 'is-number': '7.0.0' }), {
      signal: controller.signal,
      log: (line) => {
        if (line === 'started') controller.abort();
      },
    });
    await expect(pending).rejects.toThrow();
    const pid = Number(readFileSync(pidFile, 'utf8').trim());
    expect(pid).toBeGreaterThan(0);
    expect(await goneWithin(pid, 10_000)).toBe(true);
  });
});

/** Whether the process is gone (or a zombie awaiting its reaper) within `ms`; SIGKILL is delivered asynchronously. */
async function goneWithin(pid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (!isRunning(pid)) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return !isRunning(pid);
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    // A killed process whose parent does not reap it stays a zombie (state Z): it runs no more.
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}
