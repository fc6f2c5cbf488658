import type { TaskLimitsDto, TaskRunStatus, TaskStatus, TaskType } from '@quoll/client/wire';

/** A task's own resource limits for its runs: the wire form (whole numbers, each optional). */
export type TaskLimits = TaskLimitsDto;

/**
 * Whose rights a task's runs act with, from the token that created the task: `admin` runs
 * get an admin token, `workspace` runs one bounded to the task's workspace.
 */
export type TaskRunsAs = 'admin' | 'workspace';

/** A task as stored. Times are RFC 3339 strings (UTC); ticks are epoch milliseconds. */
export interface TaskRecord {
  id: string;
  name: string;
  type: TaskType;
  status: TaskStatus;
  orchestrationId: string;
  workspaceId: number;
  /** Normalised 5-field cron expression (scheduled tasks), else null. */
  schedule: string | null;
  /** IANA zone the schedule is read in; null = UTC. */
  timezone: string | null;
  jsonArgs: Record<string, unknown>;
  /** Seconds each run may last; null = no limit. */
  timeout: number | null;
  /** Limits the task set for its runs (each tighter than the server's); {} = the server's. */
  limits: TaskLimits;
  killed: boolean;
  /** Why the task is in a notable state (e.g. the crash-loop message); null when healthy. */
  statusReason: string | null;
  /** Whose rights its runs act with. */
  runsAs: TaskRunsAs;
  /** The newest cron tick the scheduler has dealt with (run, skipped or missed); null before the first. */
  lastTick: number | null;
  /** Status of the newest run, or 'unknown' when the task has no run yet. */
  lastRunStatus: TaskRunStatus | 'unknown';
  createdAt: string;
  updatedAt: string;
}

/** What is needed to create a task. */
export interface NewTask {
  name: string;
  type: TaskType;
  orchestrationId: string;
  workspaceId: number;
  schedule: string | null;
  timezone: string | null;
  jsonArgs: Record<string, unknown>;
  timeout: number | null;
  /** Whose rights its runs act with. @default 'workspace' (the narrower) */
  runsAs?: TaskRunsAs;
  /** Its own limits for its runs. @default {} (the server's) */
  limits?: TaskLimits;
}

/** A task run as stored. */
export interface TaskRunRecord {
  id: string;
  taskId: string;
  status: TaskRunStatus;
  /** Nominal cron tick (epoch ms) for scheduled runs; null for run-once and continuous runs. */
  tick: number | null;
  exitCode: number | null;
  /** Why the run ended the way it did; null while running. */
  reason: string | null;
  /** OS process id of the run's process group leader, once spawned (on its node). */
  pid: number | null;
  /**
   * The node that runs it (holding its lease while it runs); null while it waits for a node
   * to claim it (created by a node that does not run tasks).
   */
  nodeId: string | null;
  createdAt: string;
  updatedAt: string;
}

/** The node a run is created for (or claimed by), and how long its first lease lasts. */
export interface RunOwner {
  nodeId: string;
  /** The lease lasts this long from now (the database's clock), until renewed. */
  leaseMs: number;
}

/** How {@link TaskStore.claimRuns} shares a node's free slots between workspaces. */
export interface ClaimOptions {
  /**
   * Most running runs of one workspace the claiming node may hold after the claim (the node's
   * `--task-workspace-concurrency`). @default no limit
   */
  workspaceLimit?: number;
}

/** A run a node still holds after a renewal, and the status of its task (to see kills). */
export interface HeldRun {
  runId: string;
  taskId: string;
  taskStatus: TaskStatus;
}

/** How a run ended. */
export interface RunResult {
  status: Exclude<TaskRunStatus, 'running'>;
  exitCode: number | null;
  reason: string;
}

/** A cron tick that produced no run, and why. */
export interface TickRecord {
  taskId: string;
  tick: number;
  kind: 'skipped' | 'missed';
  reason: string;
  recordedAt: string;
}

/** What happened to one task at one cron tick in {@link TaskStore.createTickRuns}. */
export type TickOutcome =
  | { taskId: string; tick: number; outcome: 'created'; run: TaskRunRecord }
  /** A run for this (task, tick) already exists: a restart or second scheduler got there first. */
  | { taskId: string; tick: number; outcome: 'duplicate' }
  /** The previous run is still running; the tick was recorded as skipped. */
  | { taskId: string; tick: number; outcome: 'skipped' }
  /** The task is gone, killed or being killed. */
  | { taskId: string; tick: number; outcome: 'inactive' };

/** Filters for {@link TaskStore.listTasks}. */
export interface ListTasksFilter {
  /** true = include killed tasks too; false = hide them. @default false */
  killed?: boolean;
  /** Only tasks of this workspace. @default all workspaces */
  workspaceId?: number;
  /** Only tasks of this orchestration. @default all orchestrations */
  orchestrationId?: string;
}

/** Filters for {@link TaskStore.listRuns}. */
export interface ListRunsFilter {
  /** At most this many runs (newest first). @default all */
  limit?: number;
  /** Only runs with this status; 'all' = no filter. @default 'all' */
  status?: TaskRunStatus | 'all';
  /**
   * Only runs that come after this one in the newest-first order (older, or created at the same
   * instant with a smaller id): the last run of the previous page. Runs created meanwhile are
   * newer, so they never shift a page. @default from the newest
   */
  before?: RunPosition;
}

/** Where a run sits in a task's newest-first order: `ORDER BY created_at DESC, id DESC`. */
export interface RunPosition {
  createdAt: string;
  id: string;
}

/**
 * Storage port for tasks, their runs and their skipped/missed ticks. Every method is one
 * atomic step; implementations guarantee that a (task, tick) pair has at most one run ever,
 * that a task being killed gets no new run, and that a task has at most one run in status
 * `running` when runs are created through {@link TaskStore.createRun}/{@link TaskStore.createTickRuns}.
 */
export interface TaskStore {
  /** Creates a task in status `pending`. */
  createTask(input: NewTask): Promise<TaskRecord>;
  getTask(id: string): Promise<TaskRecord | null>;
  /** Tasks newest first. */
  listTasks(filter?: ListTasksFilter): Promise<TaskRecord[]>;
  /**
   * Sets the status of a live task; returns null when the task is missing or killed. A kill
   * cannot be undone: a task in `pending_kill` only leaves it through {@link TaskStore.markKilled}.
   */
  setTaskStatus(id: string, status: Exclude<TaskStatus, 'killed'>): Promise<TaskRecord | null>;
  /**
   * Sets (or clears with null) the task's status reason, e.g. the crash-loop message. A
   * reason is never set on a task being killed or killed (a run ending late cannot bring it back).
   */
  setTaskStatusReason(id: string, reason: string | null): Promise<void>;
  /**
   * Final state: status `killed`, `killed` = true, no status reason. Returns null when the
   * task is missing.
   */
  markKilled(id: string): Promise<TaskRecord | null>;
  /**
   * Creates a run unless one must not start: returns null when the task is missing, killed
   * or being killed, when a run for this tick exists, or when the task already has a running
   * run. A `Temporary Run` task gets at most one run ever.
   */
  createRun(input: {
    taskId: string;
    tick: number | null;
    owner?: RunOwner | null;
  }): Promise<TaskRunRecord | null>;
  /**
   * One cron boundary for many tasks, in one transaction: for each item creates the
   * (task, tick) run, or records the tick as skipped when the previous run is still running.
   * Also advances each task's `lastTick`. Created runs belong to `owner` (null: unclaimed).
   */
  createTickRuns(
    items: readonly { taskId: string; tick: number }[],
    owner?: RunOwner | null,
  ): Promise<TickOutcome[]>;
  /**
   * Claims up to `limit` unclaimed running runs for `owner`, skipping rows another node is
   * claiming at the same moment: each run is claimed by exactly one node. With
   * `workspaceLimit`, the owner ends up holding at most that many running runs of one
   * workspace (those it already holds count), and the slots go to the workspaces in turn:
   * first to those holding the fewest runs on this node, ties to the oldest waiting run.
   * Returned oldest first.
   */
  claimRuns(owner: RunOwner, limit: number, options?: ClaimOptions): Promise<TaskRunRecord[]>;
  /**
   * Extends the lease of each of `runIds` that `owner` still holds (running, its node) to
   * `leaseMs` from now; returns those, with their task's status. A run missing from the
   * answer is no longer this node's (closed, or taken as lost): its process must stop.
   */
  renewRunLeases(owner: RunOwner, runIds: readonly string[]): Promise<HeldRun[]>;
  /** Running runs whose lease has ended (their node stopped renewing it), oldest first. */
  expiredRuns(limit?: number): Promise<TaskRunRecord[]>;
  /**
   * Closes a running run whose lease has ended (re-checked in the same statement, so a node
   * that renewed meanwhile keeps it); returns null when it was not closed.
   */
  closeExpiredRun(runId: string, result: RunResult): Promise<TaskRunRecord | null>;
  /** Records the process id of a run that was spawned. */
  setRunPid(runId: string, pid: number): Promise<void>;
  /** Closes a running run; returns null when it is missing or already finished (finished runs never change). */
  finishRun(runId: string, result: RunResult): Promise<TaskRunRecord | null>;
  /**
   * Closes a running run no node has claimed (re-checked in the same statement); returns null
   * when it is missing, finished, or claimed meanwhile: a claimed run is its node's to stop.
   */
  closeUnclaimedRun(runId: string, result: RunResult): Promise<TaskRunRecord | null>;
  /**
   * Gives a run `owner` claimed but never started back to waiting (no node, no lease), so any
   * node claims it again; re-checked in the same statement. Returns null when the run is
   * missing, finished, or not `owner`'s.
   */
  releaseRun(runId: string, owner: RunOwner): Promise<TaskRunRecord | null>;
  getRun(runId: string): Promise<TaskRunRecord | null>;
  /** A task's runs, newest first. */
  listRuns(taskId: string, filter?: ListRunsFilter): Promise<TaskRunRecord[]>;
  /** Every run still in status `running`, oldest first. */
  runningRuns(): Promise<TaskRunRecord[]>;
  /** Records a tick that was skipped because the previous run was still running; advances `lastTick`. */
  recordSkippedTick(taskId: string, tick: number, reason: string): Promise<void>;
  /** Records ticks missed while the server was down (not replayed); advances `lastTick` to the newest. */
  recordMissedTicks(taskId: string, ticks: readonly number[], reason: string): Promise<void>;
  /** Moves `lastTick` forward (never back). */
  advanceLastTick(taskId: string, tick: number): Promise<void>;
  /** Skipped and missed ticks of a task, newest first. */
  listTickRecords(taskId: string, filter?: { limit?: number }): Promise<TickRecord[]>;
  /** Status of the task's newest run, or 'unknown'. */
  lastRunStatus(taskId: string): Promise<TaskRunStatus | 'unknown'>;
}
