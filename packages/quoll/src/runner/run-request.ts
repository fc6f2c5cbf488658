import type { ResourceLimits } from './resource-limits.js';

/** A packaged orchestration, ready to run: what the orchestrations domain hands the runner. */
export interface PackagedOrchestration {
  /** Directory with the orchestration's files (the zip root after packaging). */
  dir: string;
  /** The file to run, relative to `dir` (for Node: an ES module, `.mjs` or `.js`; for Python: a `.py` script). */
  entry: string;
  /**
   * The runtime that runs `entry` (a name the runner was given a runtime for).
   * @default 'node'
   */
  runtime?: string;
  /**
   * Node: links to the installed dependencies and `@quoll/client` (host paths), shown to an
   * unsandboxed run as `node_modules` in its directory. @default `<dir>/node_modules` when present
   */
  nodeModulesDir?: string;
  /**
   * Node: the installed dependency environment's own `node_modules` (null: no dependencies),
   * shown read-only to a sandboxed run as its `node_modules`; the server adds `@quoll/client`.
   * @default null
   */
  envNodeModulesDir?: string | null;
  /** Python: the package's virtual environment (host path), shown read-only to its runs. */
  pythonEnvDir?: string;
}

/** A token a run uses to call the API; issued with a time to live, revoked when the run ends. */
export interface RunToken {
  token: string;
  revoke(): Promise<void>;
  /**
   * Pushes the expiry to `ttlMs` from now; called periodically for runs without a timeout.
   * @default none (such a run's token then lives for the TTL it was issued with)
   */
  renew?: (ttlMs: number) => Promise<void>;
}

/** What to run. */
export interface RunRequest {
  runId: string;
  taskId: string;
  workspaceId: number;
  /**
   * Whose rights the run's token carries: `admin` (the task was created with an admin
   * token) or `workspace` (bounded to `workspaceId`). @default 'workspace'
   */
  runsAs?: 'admin' | 'workspace';
  /** Passed to the run as `QUOLL_TASK_ARGS` (JSON). */
  jsonArgs: Record<string, unknown>;
  /** Seconds before the run is stopped as `timed_out`; null = no limit. */
  timeoutSeconds: number | null;
  /** The package, or a function that finds it when the run gets a slot. */
  package: PackagedOrchestration | (() => Promise<PackagedOrchestration>);
  /** Limits of this run; each can only tighten the runner's. @default the runner's */
  limits?: Partial<ResourceLimits>;
}

/** How a run ended: a serialisable outcome, never a host exception. */
export interface RunOutcome {
  runId: string;
  status: 'success' | 'failure' | 'timed_out' | 'killed';
  exitCode: number | null;
  /** Short cause, also the parenthesised part of the final log line (e.g. `exit 0`). */
  reason: string;
  /** When the process was spawned (clock ms), or null when it never started. */
  startedAt: number | null;
  finishedAt: number;
}

/** A run handed to the runner. */
export interface RunHandle {
  runId: string;
  /** Resolves with the process id once spawned, or null if the run ended before spawning. */
  spawned: Promise<number | null>;
  /** Resolves when the run has ended and its final log line is on disk. */
  done: Promise<RunOutcome>;
}
