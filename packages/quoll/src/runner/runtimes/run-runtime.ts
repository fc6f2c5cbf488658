import type { Bind, WarmRuntime } from '../launch-spec.js';
import type { PackagedOrchestration } from '../run-request.js';

/** Where a run's files are, as the run sees them. */
export interface RunPaths {
  /** The run directory (its working directory), inside path. */
  workDir: string;
  /** Whether the launcher isolates the run's file system (paths other than `workDir` may move). */
  sandboxed: boolean;
  /** Where a host path every run may need appears to the process (see `RunLauncher.insidePath`). */
  insidePath(host: string, name: string): string;
  /** A server-owned host directory the runtime may keep shared files in (e.g. an SDK-only `node_modules`). */
  scratchDir: string;
}

/**
 * What runs an orchestration's entry: a language runtime (Node.js now; Python plugs in
 * here: see `PythonRuntime`). It names the program and its arguments, the environment it may inherit from the
 * server, its optional warm launcher, and which host paths a run needs to see.
 */
export interface RunRuntime {
  /** Matches {@link PackagedOrchestration.runtime}, e.g. `node`. */
  readonly name: string;
  /** Environment variables passed from the server to runs (the rest never reach user code). */
  readonly envAllow: RegExp;
  /** argv that runs `entry` (an inside path) in a fresh process. */
  argv(entry: string): string[];
  /** The warm launcher, or null when the runtime has none (every run then starts cold). */
  readonly warm: WarmRuntime | null;
  /**
   * Host paths of the runtime's own installation a sandbox must show, read-only, at the same
   * path: the interpreter and its libraries when outside the system directories, files the
   * run's environment `env` names (CA certificates).
   */
  installBinds(env: Readonly<Record<string, string>>): Bind[];
  /**
   * The package's dependencies as the run must see them. A bind whose inside path lies in
   * `paths.workDir` may be realised by an unsandboxed launcher as a link in the run directory.
   */
  dependencyBinds(pkg: PackagedOrchestration, paths: RunPaths): Promise<Bind[]>;
  /**
   * The run's command and extra environment when they depend on the package (Python: the
   * interpreter of its virtual environment); without it the runner uses `argv(entry)`.
   */
  runCommand?(
    entry: string,
    pkg: PackagedOrchestration,
    paths: RunPaths,
  ): Promise<{ argv: string[]; env: Record<string, string> }>;
}
