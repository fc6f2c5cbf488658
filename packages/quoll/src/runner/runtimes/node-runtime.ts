import { existsSync, realpathSync } from 'node:fs';
import { lstat, mkdir, symlink } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import type { Bind, WarmRuntime } from '../launch-spec.js';
import type { PackagedOrchestration } from '../run-request.js';
import { NODE_LAUNCHER_SOURCE } from './node-launcher-source.js';
import type { RunPaths, RunRuntime } from './run-runtime.js';

/** Node flags of every run process: stack traces of compiled TypeScript point at the user's lines. */
export const NODE_FLAGS: readonly string[] = ['--enable-source-maps'];

/** Environment variables passed from the server to Node runs. */
export const NODE_ENV_ALLOW =
  /^(PATH|HOME|USER|LOGNAME|SHELL|LANG|LANGUAGE|LC_[A-Z_]+|TZ|TMPDIR|TEMP|TMP|SYSTEMROOT|NODE_EXTRA_CA_CERTS|SSL_CERT_FILE|SSL_CERT_DIR|HTTPS?_PROXY|NO_PROXY|https?_proxy|no_proxy)$/;

/** Variables that name files a run's TLS needs (shown in a sandbox when outside the system folders). */
const CA_VARIABLES = ['NODE_EXTRA_CA_CERTS', 'SSL_CERT_FILE', 'SSL_CERT_DIR'];

/** Folders every sandbox shows anyway (see the bubblewrap launcher). */
const SYSTEM_PREFIXES = ['/usr/', '/etc/ssl/', '/etc/pki/', '/etc/ca-certificates/'];

/** Options of {@link NodeRuntime}. */
export interface NodeRuntimeOptions {
  /** Node executable. @default process.execPath */
  nodePath?: string;
  /**
   * The `@quoll/client` package directory (real path) sandboxed runs import; unsandboxed runs
   * get it through the package's own `node_modules` links. @default none (sandboxed runs cannot start)
   */
  sdkDir?: string;
}

/**
 * Runs orchestrations with Node.js: `node --enable-source-maps <entry>`, with a warm
 * launcher, and `node_modules` (the package's dependencies plus `@quoll/client`) in the run
 * directory: a link to the package's links folder when unsandboxed; in a sandbox, the
 * dependency environment mounted read-only, with `@quoll/client` pointing at the SDK mounted
 * at `/quoll/sdk/client` (and the SDK's own dependencies at `/quoll/sdk/node_modules`).
 */
export class NodeRuntime implements RunRuntime {
  readonly name = 'node';
  readonly envAllow = NODE_ENV_ALLOW;
  readonly warm: WarmRuntime;
  private readonly nodePath: string;
  private readonly sdkDir: string | null;
  /** Dependency folders known to hold the SDK link (they never change once installed). */
  private readonly linked = new Map<string, Promise<void>>();

  constructor(options: NodeRuntimeOptions = {}) {
    this.nodePath = options.nodePath ?? process.execPath;
    this.sdkDir = options.sdkDir ?? null;
    this.warm = {
      fileName: 'quoll-node-launcher.mjs',
      source: NODE_LAUNCHER_SOURCE,
      argv: (launcherPath) => [this.nodePath, ...NODE_FLAGS, launcherPath],
    };
  }

  argv(entry: string): string[] {
    return [this.nodePath, ...NODE_FLAGS, entry];
  }

  installBinds(env: Readonly<Record<string, string>>): Bind[] {
    const binds: Bind[] = [];
    const add = (path: string): void => {
      const real = safeRealpath(path);
      if (real === null || SYSTEM_PREFIXES.some((p) => `${real}/`.startsWith(p))) return;
      if (!binds.some((b) => b.host === real)) binds.push({ host: real, inside: real, readOnly: true });
    };
    // A Node outside /usr (nvm, /opt): its whole prefix, so its libraries and npm come along.
    const node = safeRealpath(this.nodePath);
    if (node !== null) add(dirname(dirname(node)));
    for (const name of CA_VARIABLES) {
      const value = env[name];
      if (value !== undefined && value !== '' && existsSync(value)) add(value);
    }
    return binds;
  }

  async dependencyBinds(pkg: PackagedOrchestration, paths: RunPaths): Promise<Bind[]> {
    const inside = join(paths.workDir, 'node_modules');
    if (!paths.sandboxed) {
      const top = join(resolve(pkg.dir), 'node_modules');
      const modules = pkg.nodeModulesDir ?? (existsSync(top) ? top : undefined);
      return modules === undefined ? [] : [{ host: modules, inside, readOnly: true }];
    }
    if (this.sdkDir === null) throw new Error('sandboxed Node runs need the @quoll/client package (sdkDir)');
    const sdkInside = paths.insidePath(this.sdkDir, 'sdk/client');
    const modules = pkg.envNodeModulesDir ?? join(paths.scratchDir, 'sdk-only', 'node_modules');
    await this.ensureSdkLink(modules, sdkInside);
    const binds: Bind[] = [
      { host: modules, inside, readOnly: true },
      { host: this.sdkDir, inside: sdkInside, readOnly: true },
    ];
    const sdkDeps = sdkDependencyDir(this.sdkDir);
    if (sdkDeps !== null)
      binds.push({ host: sdkDeps, inside: paths.insidePath(sdkDeps, 'sdk/node_modules'), readOnly: true });
    return binds;
  }

  /** Adds `@quoll/client` → the SDK's inside path to a dependency folder, once (unless it has one). */
  private ensureSdkLink(modules: string, target: string): Promise<void> {
    let done = this.linked.get(modules);
    if (done === undefined) {
      done = (async () => {
        const link = join(modules, '@quoll', 'client');
        try {
          await lstat(link);
          return;
        } catch {
          // Missing: add it.
        }
        await mkdir(dirname(link), { recursive: true });
        try {
          await symlink(target, link, 'dir');
        } catch (err) {
          // Another run added it first.
          if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        }
      })();
      this.linked.set(modules, done);
      done.catch(() => this.linked.delete(modules));
    }
    return done;
  }
}

/**
 * The `node_modules` folder the SDK's own dependencies resolve from: the nearest one above the
 * SDK's directory (an npm install hoists them next to `@quoll/client`; a workspace checkout
 * keeps them at its root).
 */
export function sdkDependencyDir(sdkDir: string): string | null {
  for (let dir = dirname(sdkDir); ; dir = dirname(dir)) {
    if (basename(dir) === 'node_modules') return dir;
    if (existsSync(join(dir, 'node_modules'))) return join(dir, 'node_modules');
    if (dirname(dir) === dir) return null;
  }
}

function safeRealpath(path: string): string | null {
  try {
    return realpathSync(path);
  } catch {
    return null;
  }
}
