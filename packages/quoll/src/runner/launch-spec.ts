import type { ChildProcess } from 'node:child_process';
import type { ResourceLimits } from './resource-limits.js';
import type { TaskUser } from './task-user.js';

/** A host path a run process needs, and where the process sees it. */
export interface Bind {
  /** Path on the host. */
  host: string;
  /** Path inside the run's view of the file system (equal to `host` when nothing is moved). */
  inside: string;
  /** Whether the process may write there. @default true (read-only) */
  readOnly: boolean;
}

/** A runtime's warm process: a launcher file that waits for one launch message on stdin. */
export interface WarmRuntime {
  /** File name the launcher is written under. */
  fileName: string;
  /** The launcher's source (reads one `launch-protocol` line, then becomes the run). */
  source: string;
  /**
   * argv that starts a warm process running the launcher at `launcherPath` (an inside path),
   * for runs whose cold command is `runArgv` (Python: the interpreter of the package's
   * environment, its first word).
   */
  argv(launcherPath: string, runArgv: readonly string[]): string[];
}

/**
 * How a run process is started, independent of how it is isolated: a launcher turns it
 * into a plain child process, a sandbox around one, or a job for a warm process.
 */
export interface LaunchSpec {
  /** The runtime's name (`node`); warm processes only serve runs of their runtime. */
  runtime: string;
  /** The runtime's warm launcher, or null (every run starts cold). */
  warm: WarmRuntime | null;
  /** Program and arguments of a fresh process, as it sees them (paths are inside paths). */
  argv: readonly string[];
  /** The entry file (inside path) and its arguments, for a warm process's launch message. */
  entry: string;
  args: readonly string[];
  /** The run's directory on the host: its working directory and its one writable place. */
  runDir: string;
  /** The allow-listed server variables: the same for every run, so warm processes start with them. */
  env: Readonly<Record<string, string>>;
  /** Per-run variables (token, ids, args), added to `env`. */
  runEnv: Readonly<Record<string, string>>;
  /** OS user and group to run as; null = the launcher's default. */
  user: TaskUser | null;
  /** Further host paths the process needs (the runtime, dependencies, the SDK). */
  binds: readonly Bind[];
  /** What the run may use (applied to its command before it starts). */
  limits: ResourceLimits;
  /** The process's stdin: runs get none; a warm process reads its launch message from a pipe. @default 'ignore' */
  stdin?: 'ignore' | 'pipe';
}

/** A started run process. */
export interface LaunchedProcess {
  /**
   * The child process the server holds: the run's own process, or the sandbox around it.
   * Its stdout and stderr are the run's output; its exit is the run's end.
   */
  readonly child: ChildProcess;
  /** True for a process that was running before this launch (a warm one): no 'spawn' event follows. */
  readonly alreadyRunning: boolean;
  /**
   * Signals everything the run started: its process group, or the whole sandbox. SIGKILL
   * must leave nothing behind that the launcher can reach.
   */
  readonly signal: (signal: NodeJS.Signals) => void;
}
