import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { access, mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { DependencySet } from './dependency-set.js';

/** Options of an {@link EnvCache}. */
export interface EnvCacheOptions {
  /** Where environments live: `<home>/envs`. */
  envsDir: string;
  /** The npm executable. @default 'npm' */
  npmCommand?: string;
  /**
   * Whether npm runs dependencies' install scripts. On by default: ML packages with native
   * parts need them, and orchestration code runs with the same trust when its task runs.
   * @default true
   */
  allowInstallScripts?: boolean;
  /**
   * Environment for npm. The default is the server's, minus `QUOLL_*` variables (a
   * package's install script never sees Quoll settings or tokens) and minus what an
   * enclosing `npm run`/`npm start` sets about its own project (workspace, prefix, lifecycle),
   * which would point npm at the wrong folder.
   * @default process.env without QUOLL_* and npm's per-project variables
   */
  env?: NodeJS.ProcessEnv;
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

/** Receives npm's output, one line at a time. */
export type InstallLogSink = (line: string) => void;

/** npm failed: `firstLines` holds its first error lines, for the orchestration's error. */
export class InstallError extends Error {
  constructor(
    message: string,
    readonly firstLines: string,
  ) {
    super(message);
    this.name = 'InstallError';
  }
}

interface InFlight {
  promise: Promise<InstalledEnv>;
  sinks: Set<InstallLogSink>;
  printed: string[];
}

/** Marks a temporary build directory; stale ones (a killed npm) are removed on start. */
const TMP_PREFIX = '.tmp-';

/**
 * A content-addressed cache of npm installs: one `<envsDir>/<hash>/` per dependency set.
 *
 * An environment is built in a temporary directory and renamed into place only when npm
 * succeeded, so the directory existing is the "complete" marker that survives restarts and
 * a failed or killed install is never cached. Concurrent requests for one set in this
 * process share one npm run (and all of them see its output).
 *
 * @example
 * const envs = new EnvCache({ envsDir: join(home, 'envs') });
 * const env = await envs.ensure(deps, { signal, log: (l) => console.log(l) });
 */
export class EnvCache {
  private readonly inFlight = new Map<string, InFlight>();
  private installs = 0;
  private readonly npmCommand: string;
  private readonly allowInstallScripts: boolean;
  private readonly env: NodeJS.ProcessEnv;

  constructor(private readonly options: EnvCacheOptions) {
    this.npmCommand = options.npmCommand ?? 'npm';
    this.allowInstallScripts = options.allowInstallScripts ?? true;
    this.env = options.env ?? childEnv(process.env);
  }

  /** How many npm installs this cache has started (observability; reuses do not count). */
  get installCount(): number {
    return this.installs;
  }

  /** Removes temporary build directories left by installs a stopped server cut short. */
  async removeStaleBuilds(): Promise<void> {
    await mkdir(this.options.envsDir, { recursive: true });
    for (const name of await readdir(this.options.envsDir)) {
      if (name.startsWith(TMP_PREFIX))
        await rm(join(this.options.envsDir, name), { recursive: true, force: true });
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
    const dir = join(this.options.envsDir, deps.hash);
    const ready: InstalledEnv = {
      hash: deps.hash,
      dir,
      nodeModulesDir: join(dir, 'node_modules'),
      reused: true,
    };
    const running = this.inFlight.get(deps.hash);
    if (running !== undefined) {
      if (opts.log !== undefined) {
        for (const line of running.printed) opts.log(line);
        running.sinks.add(opts.log);
      }
      const env = await running.promise;
      return { ...env, reused: true };
    }

    // Registered before the first await, so a concurrent call for the same set joins it.
    const flight: InFlight = { promise: Promise.resolve(ready), sinks: new Set(), printed: [] };
    if (opts.log !== undefined) flight.sinks.add(opts.log);
    const print = (line: string): void => {
      flight.printed.push(line);
      for (const sink of flight.sinks) sink(line);
    };
    flight.promise = (async () => {
      if (await exists(dir)) return ready;
      return this.install(deps, dir, print, opts.signal);
    })().finally(() => this.inFlight.delete(deps.hash));
    this.inFlight.set(deps.hash, flight);
    return flight.promise;
  }

  private async install(
    deps: DependencySet,
    dir: string,
    print: InstallLogSink,
    signal: AbortSignal | undefined,
  ): Promise<InstalledEnv> {
    this.installs++;
    const tmp = join(this.options.envsDir, `${TMP_PREFIX}${deps.hash}-${randomUUID().slice(0, 8)}`);
    await mkdir(tmp, { recursive: true });
    try {
      await writeFile(
        join(tmp, 'package.json'),
        JSON.stringify(
          { name: `quoll-env-${deps.hash}`, private: true, dependencies: deps.dependencies },
          null,
          2,
        ),
      );
      if (deps.lockfile !== null) await writeFile(join(tmp, 'package-lock.json'), deps.lockfile);
      // --prefix pins the install to the build folder whatever npm config is around.
      const args = [
        'install',
        '--prefix',
        tmp,
        '--omit=dev',
        '--no-audit',
        '--no-fund',
        '--no-update-notifier',
      ];
      if (!this.allowInstallScripts) args.push('--ignore-scripts');
      print(`$ npm ${args.join(' ')}`);
      await this.runNpm(args, tmp, print, signal);
      try {
        await rename(tmp, dir);
      } catch (err) {
        // Another process on this home finished the same set first: theirs is as good.
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
        await rm(tmp, { recursive: true, force: true });
      }
      return { hash: deps.hash, dir, nodeModulesDir: join(dir, 'node_modules'), reused: false };
    } catch (err) {
      await rm(tmp, { recursive: true, force: true });
      throw err;
    }
  }

  private runNpm(
    args: string[],
    cwd: string,
    print: InstallLogSink,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted === true) {
        reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
        return;
      }
      // Own process group (detached): npm starts node-gyp, install scripts, git… and an
      // abort must stop all of them, not only npm itself (which would leave orphans).
      const child = spawn(this.npmCommand, args, {
        cwd,
        env: this.env,
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const killGroup = (): void => {
        if (child.pid === undefined) return;
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          // ESRCH: the group is gone already.
        }
      };
      signal?.addEventListener('abort', killGroup, { once: true });
      const errors: string[] = [];
      const collect = (stream: NodeJS.ReadableStream, isErr: boolean): Promise<void> =>
        new Promise((done) => {
          const rl = createInterface({ input: stream });
          rl.on('line', (line) => {
            print(line);
            if (isErr && errors.length < 10 && /err/i.test(line)) errors.push(line.trim());
          });
          rl.on('close', done);
        });
      const outputs = Promise.all([collect(child.stdout, false), collect(child.stderr, true)]);
      child.on('error', (err) => reject(err));
      child.on('close', (code, sig) => {
        signal?.removeEventListener('abort', killGroup);
        // Whatever npm left running in its group (a stuck script) goes with it.
        killGroup();
        void outputs.then(() => {
          if (code === 0) return resolve();
          if (signal?.aborted)
            return reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
          const firstLines =
            errors.length > 0 ? errors.slice(0, 5).join('\n') : `npm exited with ${code ?? sig}`;
          reject(new InstallError(`npm install failed (exit ${code ?? sig}):\n${firstLines}`, firstLines));
        });
      });
    });
  }
}

/** Variables an enclosing npm run sets about its project; they must not leak into our install. */
const NPM_PROJECT_VARS =
  /^(npm_lifecycle_|npm_package_|npm_command$|npm_execpath$|npm_node_execpath$|init_cwd$|npm_config_(workspaces?|include_workspace_root|global|prefix|local_prefix)$)/i;

function childEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(
    Object.entries(env).filter(([k]) => !k.startsWith('QUOLL_') && !NPM_PROJECT_VARS.test(k)),
  );
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}
