import type { LaunchedProcess, LaunchSpec } from '../launch-spec.js';

/**
 * Starts run processes: directly, in a sandbox, or by handing the run to a warm process.
 * The runner asks it where a run directory appears to the process, lets it make the
 * directory ready, then launches.
 */
export interface RunLauncher {
  /** For diagnostics and `/v1/health`: `direct`, `bubblewrap`, … */
  readonly name: string;
  /** Whether runs are isolated from the host's files and processes (mount and PID namespaces). */
  readonly sandboxed: boolean;
  /**
   * Whether binds are fixed when the process starts (a mount namespace), so a warm process
   * can only serve runs with the same binds; false when they are links made by `prepare`.
   */
  readonly bindsAtSpawn: boolean;
  /** The run directory as the process sees it. */
  workDir(runDir: string): string;
  /**
   * Where a host path every run may need (a launcher file, the SDK) appears to the process:
   * the same path when nothing is moved, else a fixed place named after `name`.
   */
  insidePath(host: string, name: string): string;
  /**
   * Creates the empty run directory `spec.runDir` (private; the runner then fills it) and
   * whatever must exist there before launch, and returns it. A warm launcher may instead hand
   * over and return the directory of a waiting process (its mounts already hold it); the
   * runner then calls `prepare` again with a spec for that directory (which prepares it in
   * place), fills it, and launches with it as `runDir`.
   */
  prepare(spec: LaunchSpec): Promise<string>;
  /** Starts the run; synchronous, so a kill arriving after it always finds the process. */
  launch(spec: LaunchSpec): LaunchedProcess;
  /** Gives up a prepared run that will not be launched (e.g. killed while preparing). */
  abandon(spec: LaunchSpec): void;
  /**
   * Whether `pid` is (still) the process this launcher started for `runDir`, e.g. one a
   * previous server process left running.
   */
  owns(pid: number, runDir: string): boolean;
}
