import { existsSync, realpathSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Bind, WarmRuntime } from '../launch-spec.js';
import type { PackagedOrchestration } from '../run-request.js';
import { PYTHON_LAUNCHER_SOURCE } from './python-launcher-source.js';
import type { RunPaths, RunRuntime } from './run-runtime.js';

/** Environment variables passed from the server to Python runs. */
export const PYTHON_ENV_ALLOW =
  /^(PATH|HOME|USER|LOGNAME|SHELL|LANG|LANGUAGE|LC_[A-Z_]+|TZ|TMPDIR|TEMP|TMP|SSL_CERT_FILE|SSL_CERT_DIR|REQUESTS_CA_BUNDLE|CURL_CA_BUNDLE|HTTPS?_PROXY|NO_PROXY|https?_proxy|no_proxy)$/;

/** Variables naming files a run's TLS needs (shown in a sandbox when outside the system folders). */
const CA_VARIABLES = ['SSL_CERT_FILE', 'SSL_CERT_DIR', 'REQUESTS_CA_BUNDLE', 'CURL_CA_BUNDLE'];

/** Folders every sandbox shows anyway (see the bubblewrap launcher). */
const SYSTEM_PREFIXES = ['/usr/', '/etc/ssl/', '/etc/pki/', '/etc/ca-certificates/'];

/** The file a built environment describes itself in (written by the orchestrations' Python env cache). */
export const PYTHON_ENV_META = 'quoll-env.json';

/** What {@link PYTHON_ENV_META} holds. */
export interface PythonEnvMeta {
  /** Real path of the interpreter the environment was made from. */
  python: string;
  version: string;
  /** That interpreter's installation (`sys.base_prefix`), which a sandbox must show. */
  basePrefix: string;
  /** The normalised requirement lines installed. */
  requirements: string[];
}

/** Options of {@link PythonRuntime}. */
export interface PythonRuntimeOptions {
  /**
   * Folder holding the `quoll` client package (`<dir>/quoll/__init__.py`): put first on every
   * run's import path, so `import quoll` works without listing it and always matches the server.
   * @default none (runs then import only what their environment has)
   */
  sdkLibDir?: string | null;
}

/**
 * Runs Python orchestrations: `<venv>/bin/python -u <entry>` with the package's virtual
 * environment (built per requirement set at packaging) and the `quoll` client on `PYTHONPATH`.
 * Unsandboxed runs use both where they are; a sandbox shows the environment read-only at
 * `/quoll/python-env`, the client at `/quoll/sdk/python` and the interpreter's installation
 * read-only at its own path (when it is not under `/usr`). Warm processes (one kind per
 * environment) have started the interpreter and imported `quoll` before the run arrives.
 */
export class PythonRuntime implements RunRuntime {
  readonly name = 'python';
  readonly envAllow = PYTHON_ENV_ALLOW;
  readonly warm: WarmRuntime = {
    fileName: 'quoll-python-launcher.py',
    source: PYTHON_LAUNCHER_SOURCE,
    // The interpreter the run's cold command names: its package's environment's.
    argv: (launcherPath, runArgv) => [runArgv[0] ?? 'python3', '-u', launcherPath],
  };
  private readonly sdkLibDir: string | null;
  private readonly metas = new Map<string, Promise<PythonEnvMeta>>();

  constructor(options: PythonRuntimeOptions = {}) {
    this.sdkLibDir = options.sdkLibDir ?? null;
  }

  /** Without a package the runtime cannot know its interpreter: `python3` on PATH. */
  argv(entry: string): string[] {
    return ['python3', '-u', entry];
  }

  async runCommand(
    entry: string,
    pkg: PackagedOrchestration,
    paths: RunPaths,
  ): Promise<{ argv: string[]; env: Record<string, string> }> {
    const env: Record<string, string> = {
      // Lines reach the run's log as they are printed, not when a buffer fills.
      PYTHONUNBUFFERED: '1',
      // No ~/.local packages, no .pyc files written into the run directory.
      PYTHONNOUSERSITE: '1',
      PYTHONDONTWRITEBYTECODE: '1',
      PYTHONIOENCODING: 'utf-8',
    };
    if (this.sdkLibDir !== null) env.PYTHONPATH = this.sdkInside(paths);
    const envDir = this.envDir(pkg);
    return { argv: [join(this.envInside(envDir, paths), 'bin', 'python'), '-u', entry], env };
  }

  installBinds(env: Readonly<Record<string, string>>): Bind[] {
    const binds: Bind[] = [];
    for (const name of CA_VARIABLES) {
      const value = env[name];
      if (value !== undefined && value !== '' && existsSync(value)) addBind(binds, value);
    }
    return binds;
  }

  async dependencyBinds(pkg: PackagedOrchestration, paths: RunPaths): Promise<Bind[]> {
    const envDir = this.envDir(pkg);
    const binds: Bind[] = [];
    if (!paths.sandboxed) return binds;
    binds.push({ host: envDir, inside: this.envInside(envDir, paths), readOnly: true });
    if (this.sdkLibDir !== null)
      binds.push({ host: this.sdkLibDir, inside: this.sdkInside(paths), readOnly: true });
    // The environment's bin/python links to the interpreter it was made from: show that installation.
    const meta = await this.meta(envDir);
    addBind(binds, meta.basePrefix);
    addBind(binds, dirname(meta.python));
    return binds;
  }

  private envDir(pkg: PackagedOrchestration): string {
    if (pkg.pythonEnvDir === undefined)
      throw new Error('this Python orchestration has no environment; upload it again to package it');
    return pkg.pythonEnvDir;
  }

  private envInside(envDir: string, paths: RunPaths): string {
    return paths.sandboxed ? paths.insidePath(envDir, 'python-env') : envDir;
  }

  private sdkInside(paths: RunPaths): string {
    const dir = this.sdkLibDir ?? '';
    return paths.sandboxed ? paths.insidePath(dir, 'sdk/python') : dir;
  }

  /** The environment's description (it never changes once built, so it is read once). */
  private meta(envDir: string): Promise<PythonEnvMeta> {
    let meta = this.metas.get(envDir);
    if (meta === undefined) {
      meta = readFile(join(envDir, PYTHON_ENV_META), 'utf8').then(
        (text) => JSON.parse(text) as PythonEnvMeta,
      );
      this.metas.set(envDir, meta);
      meta.catch(() => this.metas.delete(envDir));
    }
    return meta;
  }
}

/**
 * Read-only binds (at the same path) a sandbox needs to run `python` from an installation
 * outside the system folders: its prefix and the folder of its executable.
 */
export function pythonInstallBinds(info: { executable: string; basePrefix: string }): Bind[] {
  const binds: Bind[] = [];
  addBind(binds, info.basePrefix);
  addBind(binds, dirname(info.executable));
  return binds;
}

/** Adds a read-only bind of `path` (real path, same place) unless the sandbox shows it anyway. */
function addBind(binds: Bind[], path: string): void {
  let real: string;
  try {
    real = realpathSync(path);
  } catch {
    return;
  }
  if (SYSTEM_PREFIXES.some((p) => `${real}/`.startsWith(p))) return;
  if (binds.some((b) => `${real}/`.startsWith(`${b.host}/`))) return;
  binds.push({ host: real, inside: real, readOnly: true });
}
