import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { hashDependencySet } from './dependency-set.js';
import type { DependencySet } from './dependency-set.js';
import { EnvCache } from './env-cache.js';
import { InstallError } from './install-error.js';
import { probeSandbox } from '../../../../test/support/probe-sandbox.js';

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
    expect(linesA.find((l) => l.startsWith('$ npm'))).toMatch(/^\$ npm install/);
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

/** A package folder with a postinstall script that leaves a mark in its own folder. */
function scriptedPackage(
  root: string,
  name: string,
  script = "require('fs').writeFileSync('postinstall-ran', 'yes')",
): string {
  const pkgDir = join(root, name);
  mkdirSync(pkgDir, { recursive: true });
  writeFileSync(
    join(pkgDir, 'package.json'),
    JSON.stringify({
      name,
      version: '1.0.0',
      main: 'index.js',
      scripts: { postinstall: `node -e "${script}"` },
    }),
  );
  writeFileSync(join(pkgDir, 'index.js'), `module.exports = '${name} loaded';`);
  return pkgDir;
}

function localSet(root: string, names: string[]): DependencySet {
  const dependencies = Object.fromEntries(names.map((n) => [n, `file:${n}`]));
  return {
    dependencies,
    lockfile: null,
    hash: hashDependencySet(dependencies, `local ${names.join(',')} ${Date.now()}`, 20),
    source: 'package.json',
    local: names.map((n) => ({ name: n, from: n })),
    localRoot: root,
  };
}

describe('EnvCache install scripts', () => {
  it('does not run install scripts by default; a package in the zip is installed as a copy, not a link', async () => {
    const zip = join(dir, 'zip');
    scriptedPackage(zip, 'local-dep');
    const envs = new EnvCache({ envsDir: join(dir, 'envs') });
    const lines: string[] = [];
    const env = await envs.ensure(localSet(zip, ['local-dep']), { log: (l) => lines.push(l) });
    const installed = join(env.nodeModulesDir, 'local-dep');
    expect(lstatSync(installed).isSymbolicLink()).toBe(false);
    expect(readFileSync(join(installed, 'index.js'), 'utf8')).toContain('local-dep loaded');
    expect(existsSync(join(installed, 'postinstall-ran'))).toBe(false);
    expect(lines.join('\n')).toMatch(/install scripts: off/);
    expect(lines.join('\n')).toMatch(/--ignore-scripts/);
  });

  it('runs the scripts of allowed packages only, and keys their environments apart', async () => {
    const zip = join(dir, 'zip');
    scriptedPackage(zip, 'allowed-dep');
    scriptedPackage(zip, 'other-dep');
    const envs = new EnvCache({ envsDir: join(dir, 'envs'), scripts: ['allowed-dep'] });
    const deps = localSet(zip, ['allowed-dep', 'other-dep']);
    const env = await envs.ensure(deps);
    expect(existsSync(join(env.nodeModulesDir, 'allowed-dep', 'postinstall-ran'))).toBe(true);
    expect(existsSync(join(env.nodeModulesDir, 'other-dep', 'postinstall-ran'))).toBe(false);
    expect(env.dir).not.toBe(join(dir, 'envs', deps.hash));
    expect(envs.nodeModulesDirOf(deps.hash)).toBe(env.nodeModulesDir);
  });
});

const sandbox = await probeSandbox('the sandboxed-install tests');

describe.skipIf(!sandbox.status.sandboxed)('EnvCache in a sandbox', () => {
  it("installs in the runs' sandbox: even an allowed script sees neither the server's files nor anything outside its build", async () => {
    const secret = join(dir, 'credentials.json');
    writeFileSync(secret, '{"token":"admin"}');
    const zip = join(dir, 'zip');
    scriptedPackage(
      zip,
      'nosy-dep',
      `const fs = require('fs'); const r = {}; ` +
        `try { fs.readFileSync('${secret}'); r.read = 'READ'; } catch (e) { r.read = e.code; } ` +
        `try { fs.writeFileSync('${join(dir, 'planted')}', 'x'); r.write = 'WROTE'; } catch (e) { r.write = e.code; } ` +
        `r.uid = process.getuid(); fs.writeFileSync('postinstall-ran', JSON.stringify(r));`,
    );
    const envs = new EnvCache({
      envsDir: join(dir, 'envs'),
      scripts: ['nosy-dep'],
      launcher: sandbox.launcher,
      user: sandbox.taskUser,
    });
    const env = await envs.ensure(localSet(zip, ['nosy-dep']));
    const seen = JSON.parse(
      readFileSync(join(env.nodeModulesDir, 'nosy-dep', 'postinstall-ran'), 'utf8'),
    ) as Record<string, unknown>;
    expect(seen).toMatchObject({ read: 'ENOENT', write: 'ENOENT' });
    if (process.getuid?.() === 0) expect(seen.uid).toBe(65534);
    expect(existsSync(join(dir, 'planted'))).toBe(false);
    // The published environment is the server's, not writable by the task user: a later run
    // or install as that user cannot rewrite what other orchestrations run with.
    for (const path of [env.dir, env.nodeModulesDir, join(env.nodeModulesDir, 'nosy-dep', 'index.js')]) {
      const st = statSync(path);
      expect(st.uid).toBe(process.getuid?.());
      expect(st.mode & 0o022).toBe(0);
    }
    // A registry package installs there too (network, cache and config reach npm).
    const fromRegistry = await envs.ensure(depSet({ 'is-number': '7.0.0' }));
    expect(existsSync(join(fromRegistry.nodeModulesDir, 'is-number', 'package.json'))).toBe(true);
  });

  it('with install scripts allowed, each install has an npm cache of its own, removed after it: a script cannot plant entries another install trusts', async () => {
    const zip = join(dir, 'zip');
    scriptedPackage(
      zip,
      'planter-dep',
      `const fs = require('fs'); const cache = process.env.npm_config_cache; ` +
        `fs.writeFileSync(require('path').join(cache, 'planted'), 'x'); fs.writeFileSync('postinstall-ran', cache);`,
    );
    const shared = join(dir, 'npm-cache');
    const envs = new EnvCache({
      envsDir: join(dir, 'envs'),
      scripts: ['planter-dep'],
      launcher: sandbox.launcher,
      user: sandbox.taskUser,
      npmCacheDir: shared,
    });
    const env = await envs.ensure(localSet(zip, ['planter-dep']));
    expect(existsSync(join(env.nodeModulesDir, 'planter-dep', 'postinstall-ran'))).toBe(true);
    // Neither the shared cache nor any leftover per-install cache holds what the script wrote.
    expect(existsSync(join(shared, 'planted'))).toBe(false);
    expect(readdirSync(join(dir, 'envs')).filter((n) => n.endsWith('-npm-cache'))).toEqual([]);
    // Without install scripts, installs keep sharing the server's npm cache.
    const plain = new EnvCache({
      envsDir: join(dir, 'plain-envs'),
      launcher: sandbox.launcher,
      user: sandbox.taskUser,
      npmCacheDir: shared,
    });
    await plain.ensure(depSet({ 'is-number': '7.0.0' }));
    expect(readdirSync(shared).length).toBeGreaterThan(0);
  });

  it('keeps the shared npm cache, writable by the task user, inside a folder of the server user that the task user cannot enter', async () => {
    const uid = process.getuid?.();
    const user = sandbox.taskUser;
    if (user === null || uid === undefined || user.uid === uid) return; // needs a root server's task user
    const home = join(dir, 'home');
    // A cache a previous version left owned by the task user is taken back.
    mkdirSync(join(home, 'npm-cache'), { recursive: true, mode: 0o755 });
    chownSync(join(home, 'npm-cache'), user.uid, user.gid);
    const envs = new EnvCache({ envsDir: join(home, 'envs'), launcher: sandbox.launcher, user });
    await envs.ensure(depSet({ 'is-number': '7.0.0' }));
    const parent = statSync(join(home, 'npm-cache'));
    expect(parent.uid).toBe(uid);
    expect(parent.mode & 0o777).toBe(0o700);
    const cache = join(home, 'npm-cache', 'shared');
    expect(statSync(cache).uid).toBe(user.uid);
    expect(readdirSync(cache).length).toBeGreaterThan(0);
  });

  it("an install script sees none of the server's environment but what npm needs", async () => {
    const zip = join(dir, 'zip');
    scriptedPackage(
      zip,
      'env-dep',
      `require('fs').writeFileSync('postinstall-ran', JSON.stringify(process.env));`,
    );
    const envs = new EnvCache({
      envsDir: join(dir, 'envs'),
      scripts: ['env-dep'],
      launcher: sandbox.launcher,
      user: sandbox.taskUser,
      env: {
        ...process.env,
        FAKE_SERVER_SECRET: 's3cr3t-env-value',
        AWS_SECRET_ACCESS_KEY: 'AKIAFAKESECRET',
        QUOLL_TOKEN: 'qtok',
        npm_config_registry: 'https://registry.npmjs.org/',
      },
    });
    const env = await envs.ensure(localSet(zip, ['env-dep']));
    const seen = JSON.parse(
      readFileSync(join(env.nodeModulesDir, 'env-dep', 'postinstall-ran'), 'utf8'),
    ) as Record<string, string>;
    expect(seen).not.toHaveProperty('FAKE_SERVER_SECRET');
    expect(seen).not.toHaveProperty('AWS_SECRET_ACCESS_KEY');
    expect(seen).not.toHaveProperty('QUOLL_TOKEN');
    // Where npm fetches from does pass.
    expect(seen.npm_config_registry).toBe('https://registry.npmjs.org/');
  });

  it("a git dependency cannot make npm run the program a cloned repository's .npmrc names as git", async () => {
    // The reviewer's case: a bare repository in the zip whose .npmrc says git=./evil.sh; npm
    // clones it (with the real git), then installs in the clone, which reads that .npmrc.
    const zip = join(dir, 'zip');
    const libx = join(zip, 'libx');
    mkdirSync(libx, { recursive: true });
    writeFileSync(join(libx, 'package.json'), JSON.stringify({ name: 'libx', version: '1.0.0' }));
    const work = join(dir, 'gitwork');
    mkdirSync(work);
    writeFileSync(
      join(work, 'package.json'),
      JSON.stringify({
        name: 'evil',
        version: '1.0.0',
        scripts: { prepare: 'node -e 0' },
        dependencies: { yy: 'git+file:///quoll/local/libx/repo.git#HEAD' },
      }),
    );
    writeFileSync(join(work, '.npmrc'), 'git=./evil.sh\n');
    writeFileSync(
      join(work, 'evil.sh'),
      '#!/bin/sh\nenv > /quoll/npm-cache/leak.txt\nexec /usr/bin/git "$@"\n',
    );
    chmodSync(join(work, 'evil.sh'), 0o755);
    const git = (...args: string[]): void => {
      execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@t', ...args], {
        cwd: work,
        stdio: 'ignore',
      });
    };
    git('init', '-q');
    git('add', '-A');
    git('commit', '-qm', 'init');
    execFileSync('git', ['clone', '-q', '--bare', work, join(libx, 'repo.git')], { stdio: 'ignore' });
    const shared = join(dir, 'npm-cache');
    mkdirSync(shared);
    if (sandbox.taskUser !== null) chownSync(shared, sandbox.taskUser.uid, sandbox.taskUser.gid);
    const envs = new EnvCache({
      envsDir: join(dir, 'envs'),
      launcher: sandbox.launcher,
      user: sandbox.taskUser,
      npmCacheDir: shared,
      env: { ...process.env, FAKE_SERVER_SECRET: 's3cr3t-env-value' },
    });
    const deps = localSet(zip, ['libx']);
    deps.dependencies.evil = 'git+file:///quoll/local/libx/repo.git#HEAD';
    const lines: string[] = [];
    const outcome = await envs.ensure(deps, { log: (l) => lines.push(l) }).then(
      () => 'installed',
      (err: unknown) => err,
    );
    expect(existsSync(join(shared, 'leak.txt'))).toBe(false);
    expect(lines.join('\n')).not.toMatch(/s3cr3t-env-value/);
    // No git dependency is fetched at all: the install fails, and nothing is cached.
    expect(outcome).toBeInstanceOf(InstallError);
    expect(readdirSync(join(dir, 'envs')).filter((n) => !n.startsWith('.'))).toEqual([]);
  });
});
