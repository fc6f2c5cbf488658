import { createHash, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, cp, lchown, lstat, mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { DirectLauncher, findExecutable, NO_LIMITS, NodeRuntime, removeRunDir } from '../runner/index.js';
import type { Bind, LaunchSpec, ResourceLimits, RunLauncher, RunRuntime, TaskUser } from '../runner/index.js';
import { pathExists } from '../files/index.js';
import type { DependencySet } from './dependency-set.js';
import type { InstallLogSink } from './install-error.js';
import { publishBuild } from './publish-build.js';
import { npmInstallEnv } from './install-env.js';
import { runInstallStep } from './run-install-step.js';
import { sealBuild } from './seal-build.js';
import { SharedBuilds } from './shared-builds.js';

/**
 * Which dependencies may run their install scripts (`preinstall`, `install`, `postinstall`):
 * `none`; `all`; or the named packages only (an admin's allowlist).
 */
export type InstallScripts = 'none' | 'all' | readonly string[];

/** Options of an {@link EnvCache}. */
export interface EnvCacheOptions {
  /** Where environments live: `<home>/envs`. */
  envsDir: string;
  /** The npm executable. @default the `npm` on PATH */
  npmCommand?: string;
  /**
   * Which dependencies' install scripts run. Off by default: a script is arbitrary code run
   * at packaging, before any task exists. Packages that need theirs (native add-ons that
   * build or download at install) are allowed by name; their scripts run after the install,
   * through `npm rebuild`, in the same sandbox.
   * @default 'none'
   */
  scripts?: InstallScripts;
  /**
   * The server's environment, of which npm gets only an allow-list (see `npmInstallEnv`):
   * PATH, HOME, locale, TZ, temp dirs, proxies, CA settings and npm's fetch settings
   * (`npm_config_registry`, `npm_config_//host/:_authToken`, …). Everything else (secrets,
   * cloud credentials, `QUOLL_*`, an enclosing `npm run`'s project variables) stays out.
   * @default process.env
   */
  env?: NodeJS.ProcessEnv;
  /**
   * How npm is started: the runs' launcher, so a sandbox holds installs too (npm then sees
   * only its build folder read-write, its cache, the user's `.npmrc` read-only, the system
   * folders and the network). @default new DirectLauncher()
   */
  launcher?: RunLauncher;
  /** The user npm runs as (a root server's sandbox: the task user). @default null (the server's) */
  user?: TaskUser | null;
  /** Resource limits of the install. @default NO_LIMITS */
  limits?: ResourceLimits;
  /** The Node runtime whose installation a sandboxed npm needs. @default new NodeRuntime() */
  runtime?: RunRuntime;
  /**
   * npm's cache for sandboxed installs that run no install scripts. An install that may run
   * scripts gets a cache of its own instead (see {@link EnvCache}).
   * @default `<envsDir>/../npm-cache/shared` (its parent kept the server user's, 0700: the
   * cache must be the install user's to be written, but that user must not reach it outside
   * a sandbox)
   */
  npmCacheDir?: string;
  /** The npm user config shown (read-only) to sandboxed installs. @default `~/.npmrc` when it exists */
  npmrc?: string | null;
}

/** An installed dependency environment. */
export interface InstalledEnv {
  hash: string;
  /** `<envsDir>/<hash>`. */
  dir: string;
  /** `<envsDir>/<hash>/node_modules`. */
  nodeModulesDir: string;
  /** True when the environment already existed (no npm run by this call). */
  reused: boolean;
}

/** Marks a temporary build directory; stale ones (a killed npm) are removed on start. */
const TMP_PREFIX = '.tmp-';

/**
 * npm's cache for the install building in `tmp` when install scripts may run, made for it and
 * removed after it. Its name starts like `tmp`'s, so a server killed mid-install leaves it to
 * the same start-up sweep.
 */
function npmCacheOf(tmp: string): string {
  return `${tmp}-npm-cache`;
}

/**
 * A content-addressed cache of npm installs: one `<envsDir>/<hash>/` per dependency set
 * (and install-script policy: a policy other than the default adds a suffix).
 *
 * An environment is built in a temporary directory and renamed into place only when npm
 * succeeded, so the directory existing is the "complete" marker that survives restarts and
 * a failed or killed install is never cached. Concurrent requests for one set in this
 * process share one npm run (and all of them see its output). npm installs with
 * `--ignore-scripts` unless the policy allows scripts, and with `--install-links`, so a
 * dependency shipped in the zip is copied into `node_modules` rather than linked. In a sandbox,
 * an install whose policy allows scripts gets an npm cache of its own, removed after it: a
 * script is arbitrary code, and could otherwise plant cache entries (packuments, tarballs under
 * their keys) that a later install of another workspace's dependencies would trust.
 *
 * @example
 * const envs = new EnvCache({ envsDir: join(home, 'envs'), launcher, user });
 * const env = await envs.ensure(deps, { signal, log: (l) => console.log(l) });
 */
export class EnvCache {
  private readonly inFlight = new SharedBuilds<InstalledEnv>();
  private installs = 0;
  private readonly npmCommand: string;
  private readonly scripts: InstallScripts;
  private readonly env: NodeJS.ProcessEnv;
  private readonly launcher: RunLauncher;
  private readonly runtime: RunRuntime;
  /** Appended to the directory name of environments built under a non-default script policy. */
  private readonly suffix: string;

  constructor(private readonly options: EnvCacheOptions) {
    this.npmCommand = options.npmCommand ?? findExecutable('npm') ?? 'npm';
    this.scripts = options.scripts ?? 'none';
    this.env = options.env ?? process.env;
    this.launcher = options.launcher ?? new DirectLauncher();
    this.runtime = options.runtime ?? new NodeRuntime();
    this.suffix =
      this.scripts === 'none'
        ? ''
        : `-s${createHash('sha256')
            .update(this.scripts === 'all' ? 'all' : [...this.scripts].sort().join(','))
            .digest('hex')
            .slice(0, 8)}`;
  }

  /** How many npm installs this cache has started (observability; reuses do not count). */
  get installCount(): number {
    return this.installs;
  }

  /** Which install scripts run, for the packaging log: `none`, `all`, or the allowed names. */
  get scriptPolicy(): string {
    return this.scripts === 'none' || this.scripts === 'all' ? this.scripts : this.scripts.join(', ');
  }

  /** The `node_modules` of the environment with this hash (whether installed or not). */
  nodeModulesDirOf(hash: string): string {
    return join(this.options.envsDir, `${hash}${this.suffix}`, 'node_modules');
  }

  /** Removes temporary build directories left by installs a stopped server cut short. */
  async removeStaleBuilds(): Promise<void> {
    await mkdir(this.options.envsDir, { recursive: true });
    for (const name of await readdir(this.options.envsDir)) {
      if (name.startsWith(TMP_PREFIX)) await removeRunDir(join(this.options.envsDir, name));
    }
  }

  /**
   * Returns the environment for `deps`, installing it with npm if it does not exist yet.
   * A call joining an install already running shares it, including its abort signal
   * (the first caller's).
   *
   * @throws InstallError when npm fails; an AbortError when `signal` stops the install.
   */
  async ensure(
    deps: DependencySet,
    opts: { signal?: AbortSignal; log?: InstallLogSink } = {},
  ): Promise<InstalledEnv> {
    const dir = join(this.options.envsDir, `${deps.hash}${this.suffix}`);
    const ready: InstalledEnv = {
      hash: deps.hash,
      dir,
      nodeModulesDir: join(dir, 'node_modules'),
      reused: true,
    };
    return this.inFlight.run(deps.hash, opts.log, async (print) =>
      (await pathExists(dir)) ? ready : this.install(deps, dir, print, opts.signal),
    );
  }

  private async install(
    deps: DependencySet,
    dir: string,
    print: InstallLogSink,
    signal: AbortSignal | undefined,
  ): Promise<InstalledEnv> {
    this.installs++;
    await mkdir(this.options.envsDir, { recursive: true });
    const tmp = join(this.options.envsDir, `${TMP_PREFIX}${deps.hash}-${randomUUID().slice(0, 8)}`);
    // The zip's own packages, copied beside the build folder: npm packs a `file:` folder
    // outside the project into node_modules (it would only link one inside it).
    const local = (deps.local ?? []).length > 0 ? `${tmp}.local` : null;
    const user = this.options.user ?? null;
    const ownCache = this.ownCache(tmp);
    try {
      if (ownCache !== null) {
        await mkdir(ownCache, { mode: 0o700 });
        if (user !== null) await lchown(ownCache, user.uid, user.gid);
      }
      await this.launcher.prepare(this.spec(tmp, [], local));
      const dependencies = { ...deps.dependencies };
      if (local !== null) {
        const inside = this.launcher.insidePath(local, 'local');
        for (const dep of deps.local ?? []) {
          await mkdir(dirname(join(local, dep.from)), { recursive: true });
          await cp(join(deps.localRoot ?? '', dep.from), join(local, dep.from), { recursive: true });
          dependencies[dep.name] = `file:${inside}/${dep.from}`;
        }
        if (user !== null) await chownTree(local, user);
      }
      await writeFile(
        join(tmp, 'package.json'),
        JSON.stringify({ name: `quoll-env-${deps.hash}`, private: true, dependencies }, null, 2),
      );
      if (deps.lockfile !== null) await writeFile(join(tmp, 'package-lock.json'), deps.lockfile);
      if (user !== null) await chownTree(tmp, user);
      const prefix = this.launcher.workDir(tmp);
      // --prefix pins the install to the build folder whatever npm config is around.
      const args = [
        'install',
        '--prefix',
        prefix,
        '--omit=dev',
        '--no-audit',
        '--no-fund',
        '--no-update-notifier',
        '--install-links',
      ];
      if (this.scripts !== 'all') args.push('--ignore-scripts');
      print(
        this.scripts === 'none'
          ? 'install scripts: off (an admin may allow packages by name with QUOLL_NPM_ALLOW_SCRIPTS)'
          : `install scripts: allowed for ${this.scriptPolicy}`,
      );
      print(`$ npm ${args.join(' ')}`);
      await this.runNpm(this.spec(tmp, args, local), print, signal);
      if (Array.isArray(this.scripts)) {
        // The allowed packages that are in this environment run their scripts now.
        const allowed = (this.scripts as readonly string[]).filter((name) =>
          existsSync(join(tmp, 'node_modules', name, 'package.json')),
        );
        if (allowed.length > 0) {
          const rebuild = [
            'rebuild',
            ...allowed,
            '--prefix',
            prefix,
            '--ignore-scripts=false',
            '--foreground-scripts',
          ];
          print(`$ npm ${rebuild.join(' ')}`);
          await this.runNpm(this.spec(tmp, rebuild, local), print, signal);
        }
      }
      // npm ran as the task user: the environment becomes the server's before others use it.
      await sealBuild(tmp, user);
      await publishBuild(tmp, dir);
      return { hash: deps.hash, dir, nodeModulesDir: join(dir, 'node_modules'), reused: false };
    } catch (err) {
      await removeRunDir(tmp);
      throw err;
    } finally {
      if (local !== null) await rm(local, { recursive: true, force: true });
      if (ownCache !== null) await removeRunDir(ownCache);
    }
  }

  /** The npm cache of the install building in `tmp` alone, when it needs one (null: the shared one). */
  private ownCache(tmp: string): string | null {
    return this.launcher.sandboxed && this.scripts !== 'none' ? npmCacheOf(tmp) : null;
  }

  /**
   * How npm is launched in the build folder `tmp`: its cache and config, the runtime, the
   * limits, and the copies of the zip's own packages (`local`, read-only).
   */
  private spec(tmp: string, args: string[], local: string | null): LaunchSpec {
    const env = npmInstallEnv(this.env);
    const binds: Bind[] = [];
    if (local !== null)
      binds.push({ host: local, inside: this.launcher.insidePath(local, 'local'), readOnly: true });
    if (this.launcher.sandboxed) {
      binds.push(...this.runtime.installBinds(env));
      // A private HOME (the sandbox's /tmp), a cache apart from the server user's (this
      // install's own when scripts may run), the operator's npm config read-only.
      env.HOME = '/tmp';
      const cache =
        this.ownCache(tmp) ?? this.options.npmCacheDir ?? join(this.sharedCacheParent(), 'shared');
      const cacheInside = this.launcher.insidePath(cache, 'npm-cache');
      binds.push({ host: cache, inside: cacheInside, readOnly: false });
      env.npm_config_cache = cacheInside;
      const npmrc = this.options.npmrc === undefined ? defaultNpmrc() : this.options.npmrc;
      if (npmrc !== null) {
        const inside = this.launcher.insidePath(npmrc, 'npmrc');
        binds.push({ host: npmrc, inside, readOnly: true });
        env.npm_config_userconfig = inside;
      }
    }
    return {
      runtime: 'npm',
      warm: null,
      argv: [this.npmCommand, ...args],
      entry: this.npmCommand,
      args,
      runDir: tmp,
      env,
      runEnv: {},
      user: this.options.user ?? null,
      binds,
      limits: this.options.limits ?? NO_LIMITS,
    };
  }

  /** The folder holding the default shared npm cache: `<envsDir>/../npm-cache`. */
  private sharedCacheParent(): string {
    return join(dirname(this.options.envsDir), 'npm-cache');
  }

  /**
   * Makes the default shared cache's parent the server user's, 0700, and nothing in it but
   * the cache: the cache itself is the install user's (npm writes it as that user), and with
   * a task user the home is 0711, so only this parent keeps that user (any process of it
   * outside a sandbox) from reaching the cache other installs trust. A parent an earlier
   * version left to the task user is taken back, and what it held (which that user could
   * write) is dropped.
   */
  private async ensureSharedCacheParent(): Promise<void> {
    const parent = this.sharedCacheParent();
    await mkdir(parent, { recursive: true, mode: 0o700 });
    let st = await lstat(parent);
    if (!st.isDirectory()) {
      await rm(parent, { force: true });
      await mkdir(parent, { mode: 0o700 });
      st = await lstat(parent);
    }
    const uid = process.getuid?.();
    if (uid !== undefined && st.uid !== uid) {
      await lchown(parent, uid, process.getgid?.() ?? st.gid);
      for (const name of await readdir(parent)) await removeRunDir(join(parent, name));
    }
    await chmod(parent, 0o700);
  }

  private async runNpm(
    spec: LaunchSpec,
    print: InstallLogSink,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    const ownCache = this.ownCache(spec.runDir);
    if (this.launcher.sandboxed && ownCache === null && this.options.npmCacheDir === undefined)
      await this.ensureSharedCacheParent();
    return runInstallStep(this.launcher, spec, {
      // The build folder and this install's own cache, bounded together; a shared cache holds
      // the tarballs of what builds extract into their (bounded) folders, and no script writes it.
      diskDirs: ownCache === null ? [spec.runDir] : [spec.runDir, ownCache],
      print,
      signal,
      what: 'npm install',
      isErrorLine: (line) => /err/i.test(line),
    });
  }
}

/** The server user's npm config file, when there is one. */
function defaultNpmrc(): string | null {
  const path = join(homedir(), '.npmrc');
  return existsSync(path) ? path : null;
}

/** Gives a folder tree to a user. */
async function chownTree(dir: string, user: TaskUser): Promise<void> {
  await lchown(dir, user.uid, user.gid);
  for (const name of await readdir(dir, { recursive: true }))
    await lchown(join(dir, name), user.uid, user.gid);
}
