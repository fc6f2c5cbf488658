import { randomUUID } from 'node:crypto';
import { lchown, mkdir, readdir, writeFile } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { ApiError } from '../errors/index.js';
import {
  DirectLauncher,
  NO_LIMITS,
  PYTHON_ENV_META,
  pythonInstallBinds,
  removeRunDir,
} from '../runner/index.js';
import type {
  Bind,
  LaunchSpec,
  PythonEnvMeta,
  PythonInfo,
  PythonInterpreter,
  ResourceLimits,
  RunLauncher,
  TaskUser,
} from '../runner/index.js';
import { pathExists } from '../files/index.js';
import type { InstallLogSink } from './install-error.js';
import { publishBuild } from './publish-build.js';
import { hashPythonEnv } from './python-requirements.js';
import { pipInstallEnv } from './install-env.js';
import { runInstallStep } from './run-install-step.js';
import { sealBuild, writeNewFile } from './seal-build.js';
import { SharedBuilds } from './shared-builds.js';

/** Options of a {@link PythonEnvCache}. */
export interface PythonEnvCacheOptions {
  /** Where environments live (shared with the npm ones): `<home>/envs`; Python ones are `py-<hash>`. */
  envsDir: string;
  /** The interpreter environments are made from (`QUOLL_PYTHON` / `--python`). */
  python: PythonInterpreter;
  /**
   * The server's environment, of which `python -m venv` and pip get only an allow-list (see
   * `pipInstallEnv`): PATH, HOME, locale, TZ, temp dirs, proxies, CA settings and pip's fetch
   * settings (`PIP_INDEX_URL`, `PIP_FIND_LINKS`, `PIP_CONFIG_FILE`, …), so pip's configuration
   * applies as the operator set it and nothing else (secrets, cloud credentials, `QUOLL_*`)
   * reaches an sdist's build code. @default process.env
   */
  env?: NodeJS.ProcessEnv;
  /**
   * How the commands are started: the runs' launcher, so a sandbox holds installs too (pip
   * then sees its build folder and a cache of its own read-write, the interpreter, pip's config files and
   * the local folders they name read-only, the system folders and the network).
   * @default new DirectLauncher()
   */
  launcher?: RunLauncher;
  /** The user installs run as (a root server's sandbox: the task user). @default null (the server's) */
  user?: TaskUser | null;
  /** Resource limits of an install. @default NO_LIMITS */
  limits?: ResourceLimits;
}

/** A built Python environment. */
export interface PythonEnv {
  hash: string;
  /** `<envsDir>/py-<hash>`: a virtual environment (`bin/python`). */
  dir: string;
  /** True when it already existed (nothing built by this call). */
  reused: boolean;
}

/**
 * pip's cache for the install building in `tmp`, made for it and removed after it. Its name
 * starts like `tmp`'s, so a server killed mid-install leaves it to the same start-up sweep.
 */
function pipCacheOf(tmp: string): string {
  return `${tmp}-pip-cache`;
}

/** Marks a temporary build directory (shared with the npm cache, whose start removes stale ones). */
const TMP_PREFIX = '.tmp-';
const ENV_PREFIX = 'py-';

/** pip >= 22.3 can install into another interpreter's environment (`pip --python`). */
function pipCanTarget(version: string | null): boolean {
  if (version === null) return false;
  const [major = 0, minor = 0] = version.split('.').map(Number);
  return major > 22 || (major === 22 && minor >= 3);
}

/**
 * A content-addressed cache of Python virtual environments: one `<envsDir>/py-<hash>/` per
 * requirement set and interpreter (see `hashPythonEnv`), shared by every orchestration that
 * asks for the same set, built once.
 *
 * An environment is made with `python -m venv` in a temporary directory and renamed into place
 * only when pip succeeded, so its existence is the "complete" marker and a failed or cut-short
 * install is never cached. When the interpreter's own pip is 22.3 or newer the environment is
 * made without pip and that pip installs into it (`pip --python`), which saves seconds per
 * environment; otherwise the environment gets its own pip. Nothing about pip is set here
 * beyond `--no-input` and the log format: the index, find-links, proxies and certificates are
 * pip's own configuration from the server's environment. Environments no orchestration uses
 * any more are removed by {@link prune} (the packager calls it when it starts).
 *
 * @example
 * const envs = new PythonEnvCache({ envsDir: join(home, 'envs'), python: new PythonInterpreter('python3') });
 * const env = await envs.ensure(['requests==2.31.0'], { log: (l) => console.log(l) });
 */
export class PythonEnvCache {
  /** The interpreter environments are made from. */
  readonly python: PythonInterpreter;
  private readonly inFlight = new SharedBuilds<PythonEnv>();
  private readonly env: NodeJS.ProcessEnv;
  private readonly launcher: RunLauncher;
  private builds = 0;
  private pipConfig: Promise<Bind[]> | null = null;

  constructor(private readonly options: PythonEnvCacheOptions) {
    this.python = options.python;
    this.env = options.env ?? process.env;
    this.launcher = options.launcher ?? new DirectLauncher();
  }

  /** How many environments this cache has built (reuses do not count). */
  get buildCount(): number {
    return this.builds;
  }

  /** The directory of the environment with this hash (whether built or not). */
  dirOf(hash: string): string {
    return join(this.options.envsDir, `${ENV_PREFIX}${hash}`);
  }

  /**
   * The interpreter, or an `ApiError('python_unavailable')` saying why there is none.
   * @throws ApiError `python_unavailable`
   */
  async requirePython(): Promise<PythonInfo> {
    const probe = await this.python.probe();
    if (probe.ok) return probe.info;
    throw new ApiError(
      'python_unavailable',
      `This is a Python orchestration (a .py entrypoint), but the server has no usable Python: ${probe.reason}. ` +
        'An admin installs Python 3.9 or newer with its venv module and points the server at it with QUOLL_PYTHON or ' +
        '--python (default: python3 on PATH). TypeScript orchestrations are not affected.',
      { python: this.python.command },
    );
  }

  /** The hash of the environment for these normalised requirement lines. */
  async hashOf(lines: readonly string[]): Promise<string> {
    return hashPythonEnv(lines, await this.requirePython());
  }

  /**
   * Returns the environment for `lines`, building it if it does not exist yet. A call joining
   * a build already running shares it (and sees all its output).
   *
   * @throws InstallError when `python -m venv` or pip fails (with pip's reason); an error from
   * `signal` when it stops the build; ApiError `python_unavailable`.
   */
  async ensure(
    lines: readonly string[],
    opts: { signal?: AbortSignal; log?: InstallLogSink } = {},
  ): Promise<PythonEnv> {
    const info = await this.requirePython();
    const hash = hashPythonEnv(lines, info);
    const dir = this.dirOf(hash);
    return this.inFlight.run(hash, opts.log, async (print) =>
      (await pathExists(dir))
        ? { hash, dir, reused: true }
        : this.build(info, lines, hash, dir, print, opts.signal),
    );
  }

  /**
   * Removes the Python environments whose hash is not in `inUse` (none of the instance's
   * orchestrations runs with them), except those being built. Returns the removed hashes.
   */
  async prune(inUse: ReadonlySet<string>): Promise<string[]> {
    const removed: string[] = [];
    let names: string[];
    try {
      names = await readdir(this.options.envsDir);
    } catch {
      return removed;
    }
    for (const name of names) {
      if (!name.startsWith(ENV_PREFIX)) continue;
      const hash = name.slice(ENV_PREFIX.length);
      if (inUse.has(hash) || this.inFlight.has(hash)) continue;
      await removeRunDir(join(this.options.envsDir, name));
      removed.push(hash);
    }
    return removed;
  }

  private async build(
    info: PythonInfo,
    lines: readonly string[],
    hash: string,
    dir: string,
    print: InstallLogSink,
    signal: AbortSignal | undefined,
  ): Promise<PythonEnv> {
    this.builds++;
    await mkdir(this.options.envsDir, { recursive: true });
    const tmp = join(this.options.envsDir, `${TMP_PREFIX}${ENV_PREFIX}${hash}-${randomUUID().slice(0, 8)}`);
    const user = this.options.user ?? null;
    const inside = this.launcher.workDir(tmp);
    const external = pipCanTarget(info.pip);
    const extraBinds = this.launcher.sandboxed ? await this.pipConfigBinds(info) : [];
    try {
      if (this.launcher.sandboxed) {
        await mkdir(pipCacheOf(tmp), { mode: 0o700 });
        if (user !== null) await lchown(pipCacheOf(tmp), user.uid, user.gid);
      }
      await this.launcher.prepare(this.spec(info, tmp, [], extraBinds));
      const requirementsFile = 'quoll-requirements.txt';
      await writeFile(join(tmp, requirementsFile), lines.length === 0 ? '' : `${lines.join('\n')}\n`);
      if (user !== null) await lchown(join(tmp, requirementsFile), user.uid, user.gid);
      const needsPip = lines.length > 0 && !external;
      const venv = [info.executable, '-m', 'venv', ...(needsPip ? [] : ['--without-pip']), inside];
      print(`$ ${venv.join(' ')}`);
      await this.run(this.spec(info, tmp, venv, extraBinds), print, signal, 'python -m venv');
      if (lines.length > 0) {
        const pipArgs = [
          'install',
          '--no-input',
          '--progress-bar',
          'off',
          '--no-warn-script-location',
          '-r',
          join(inside, requirementsFile),
        ];
        const pip = external
          ? [info.executable, '-m', 'pip', '--python', join(inside, 'bin', 'python'), ...pipArgs]
          : [join(inside, 'bin', 'python'), '-m', 'pip', ...pipArgs];
        print(
          `$ ${external ? 'pip --python <env>/bin/python' : '<env>/bin/python -m pip'} ${pipArgs.join(' ')}`,
        );
        await this.run(this.spec(info, tmp, pip, extraBinds), print, signal, 'pip install');
      } else {
        print('no requirements to install');
      }
      const meta: PythonEnvMeta = {
        python: info.executable,
        version: info.version.join('.'),
        basePrefix: info.basePrefix,
        requirements: [...lines],
      };
      // The build folder was the sandbox's /quoll/run: anything in it may be a link its code
      // planted. It becomes the server's first, then the metadata is written as a new file.
      await sealBuild(tmp, user);
      await writeNewFile(join(tmp, PYTHON_ENV_META), `${JSON.stringify(meta, null, 2)}\n`);
      await publishBuild(tmp, dir);
      return { hash, dir, reused: false };
    } catch (err) {
      await removeRunDir(tmp);
      throw err;
    } finally {
      await removeRunDir(pipCacheOf(tmp));
    }
  }

  /** How a command runs in the build folder `tmp`: the interpreter, pip's config and cache, the limits. */
  private spec(info: PythonInfo, tmp: string, argv: string[], extraBinds: readonly Bind[]): LaunchSpec {
    // An allow-list of the server's: an sdist's build backend is arbitrary code and sees it all.
    const env = pipInstallEnv(this.env);
    env.PYTHONNOUSERSITE = '1';
    const binds: Bind[] = [];
    if (this.launcher.sandboxed) {
      binds.push(...pythonInstallBinds(info), ...extraBinds);
      // A cache of this install's own: a shared one would let one install's build backend (an
      // sdist's setup.py runs arbitrary code) plant wheels or responses another install trusts.
      const cache = pipCacheOf(tmp);
      const cacheInside = this.launcher.insidePath(cache, 'pip-cache');
      binds.push({ host: cache, inside: cacheInside, readOnly: false });
      env.PIP_CACHE_DIR = cacheInside;
    }
    const [program = info.executable, ...args] = argv;
    return {
      runtime: 'pip',
      warm: null,
      argv,
      entry: program,
      args,
      runDir: tmp,
      env,
      runEnv: {},
      user: this.options.user ?? null,
      binds,
      limits: this.options.limits ?? NO_LIMITS,
    };
  }

  /**
   * What a sandboxed pip must see of its configuration: the config files pip reads here
   * (`pip config debug`) and every absolute path or `file:` URL named in them or in `PIP_*`
   * variables (find-links folders, a local index, certificates, constraints), read-only at
   * their own paths. Asked once.
   */
  private pipConfigBinds(info: PythonInfo): Promise<Bind[]> {
    this.pipConfig ??= new Promise<Bind[]>((resolve) => {
      const env: NodeJS.ProcessEnv = { ...pipInstallEnv(this.env), PYTHONNOUSERSITE: '1' };
      execFile(info.executable, ['-m', 'pip', 'config', 'debug'], { env, timeout: 60_000 }, (err, stdout) => {
        const paths = new Set<string>();
        const text = err === null ? String(stdout) : '';
        for (const line of text.split('\n')) {
          const file = /^\s+(\/\S.*), exists: True$/.exec(line);
          if (file?.[1] !== undefined) {
            paths.add(file[1]);
            continue;
          }
          const value = /^\s+[\w.-]+(?::\s|=)'?(.*?)'?$/.exec(line)?.[1] ?? '';
          for (const token of value.split(/\s+/)) {
            const path = token.startsWith('file://')
              ? decodeURIComponent(token.slice('file://'.length))
              : token;
            if (isAbsolute(path)) paths.add(path.replace(/\/+$/, '') || '/');
          }
        }
        // Values from the environment, in case pip could not be asked.
        for (const [k, v] of Object.entries(pipInstallEnv(this.env))) {
          if (!k.startsWith('PIP_') || v === undefined) continue;
          for (const token of v.split(/\s+/)) {
            const path = token.startsWith('file://')
              ? decodeURIComponent(token.slice('file://'.length))
              : token;
            if (isAbsolute(path)) paths.add(path.replace(/\/+$/, '') || '/');
          }
        }
        const binds: Bind[] = [];
        for (const path of paths) {
          if (path === '/' || !existsSync(path)) continue;
          // A local index lists its files by relative links (`../../files/x.whl`): show its parent too.
          const host = path.endsWith('/simple') ? dirname(path) : path;
          if (binds.some((b) => `${host}/`.startsWith(`${b.host}/`))) continue;
          binds.push({ host, inside: host, readOnly: true });
        }
        resolve(binds);
      });
    });
    return this.pipConfig;
  }

  private run(
    spec: LaunchSpec,
    print: InstallLogSink,
    signal: AbortSignal | undefined,
    what: string,
  ): Promise<void> {
    return runInstallStep(this.launcher, spec, {
      print,
      signal,
      what,
      // The environment being built and pip's cache of this install alone, bounded together.
      diskDirs: [spec.runDir, pipCacheOf(spec.runDir)],
      isErrorLine: (line) => line.trim() !== '',
      // pip says why on stderr, its ERROR lines first.
      reasonOf: (errors) => {
        const reasons = errors.filter((l) => /^ERROR:/.test(l));
        return (reasons.length > 0 ? reasons : errors).slice(0, 5);
      },
    });
  }
}
