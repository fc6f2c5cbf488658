import { errorFromCode } from '../errors/index.js';
import { inspectCustom, PrintableList, renderFields, renderTable } from '../format/index.js';
import type { HttpTransport } from '../http/index.js';
import type {
  TaskDto,
  TaskLimitsDto,
  TaskRunDto,
  TaskRunStatus,
  TaskStatus,
  TaskTickDto,
  TaskType,
} from '../wire/index.js';
import { displayTime } from './display-time.js';
import { TaskRun, TaskRunList } from './task-run.js';
import { TaskTickList } from './task-tick.js';

/** Options of `task.lastRuns()`. */
export interface LastRunsOptions {
  /** At most this many runs, newest first. @default all */
  limit?: number;
  /** Only runs with this status. @default 'all' */
  status?: TaskRunStatus | 'all';
  /**
   * The `nextCursor` of the previous page (asked with the same `status`): this page starts
   * after its last run. Every run that existed when paging started is listed once, in order.
   * Runs created meanwhile sort before the first page, unless the server node that created them
   * has a clock behind the others: then they may sort into pages already read.
   * @default from the newest run
   */
  cursor?: string;
}

/**
 * A task: an orchestration run once, on a cron schedule, or continuously. Fields are as
 * fetched; `status()` and `lastRunStatus()` re-read the server each call.
 * @example
 *   const task = await orchestration.runOnce({ name: 'house price run once', jsonArgs: { pipeline_name: 'p' } });
 *   while ((await task.status()) !== 'started') await new Promise((r) => setTimeout(r, 100));
 *   const [run] = await task.lastRuns({ limit: 1 });
 */
export class Task {
  readonly #http: HttpTransport;
  #dto: TaskDto;

  /** @internal */
  constructor(http: HttpTransport, dto: TaskDto) {
    this.#http = http;
    this.#dto = { ...dto };
  }

  get id(): string {
    return this.#dto.id;
  }
  /** Free text; not unique. */
  get name(): string {
    return this.#dto.name;
  }
  /** `Temporary Run`, `Scheduled Run` or `Continuous Run`. */
  get type(): TaskType {
    return this.#dto.type;
  }
  /** The normalised cron expression of a scheduled task, else null. */
  get schedule(): string | null {
    return this.#dto.schedule;
  }
  /** The IANA time zone of the schedule; null = UTC. */
  get timezone(): string | null {
    return this.#dto.timezone;
  }
  get jsonArgs(): Record<string, unknown> {
    return structuredClone(this.#dto.jsonArgs);
  }
  /** Seconds each run may last; null = no limit. */
  get timeout(): number | null {
    return this.#dto.timeout;
  }
  /** The resource limits the task set for its runs ({} = the server's); the server's apply to the rest. */
  get limits(): TaskLimitsDto {
    return { ...(this.#dto.limits ?? {}) };
  }
  get orchestrationId(): string {
    return this.#dto.orchestrationId;
  }
  get workspaceId(): number {
    return this.#dto.workspaceId;
  }
  get workspaceName(): string {
    return this.#dto.workspaceName;
  }
  /**
   * Why the task is in a notable state (as of the last fetch; `status()` re-reads it), e.g.
   * a continuous task's crash loop; null when healthy.
   */
  get statusReason(): string | null {
    return this.#dto.statusReason ?? null;
  }
  /** Whether the task was killed (as of the last fetch). */
  get killed(): boolean {
    return this.#dto.killed;
  }
  /** The seed's "Active": not killed. */
  get active(): boolean {
    return !this.#dto.killed;
  }
  get createdAt(): string {
    return this.#dto.createdAt;
  }
  get updatedAt(): string {
    return this.#dto.updatedAt;
  }

  /**
   * The task status, re-read: `pending` → `started` → `pending_kill` → `killed`. A run-once
   * task stays `started` after its run ends; the outcome is on the run.
   */
  async status(): Promise<TaskStatus> {
    await this.refetch();
    return this.#dto.status;
  }

  /** Kills the task: no run starts after this, running ones are stopped. Returns `'pending_kill'`. */
  async kill(): Promise<'pending_kill'> {
    this.#dto = await this.#http.json<TaskDto>('POST', `/v1/tasks/${encodeURIComponent(this.id)}/kill`);
    return 'pending_kill';
  }

  /**
   * The task's runs, newest first. With a `limit`, one page: its `nextCursor` (null on the
   * last page) passed as `cursor` gets the next, older page.
   * @example
   *   let page = await task.lastRuns({ limit: 100 });
   *   while (page.nextCursor !== null) page = await task.lastRuns({ limit: 100, cursor: page.nextCursor });
   */
  async lastRuns(options: LastRunsOptions = {}): Promise<TaskRunList> {
    const res = await this.#http.send('GET', `/v1/tasks/${encodeURIComponent(this.id)}/runs`, {
      query: { limit: options.limit, status: options.status, cursor: options.cursor },
    });
    const runs = (await res.json()) as TaskRunDto[];
    return TaskRunList.page(
      runs.map((r) => new TaskRun(this.#http, r)),
      res.headers.get('x-quoll-next-cursor'),
    );
  }

  /**
   * One run of this task by its id, wherever it is in the history (no paging needed).
   * Throws `NotFoundError` (`task_run_not_found`) when no run has this id or the run belongs
   * to another task.
   * @example
   *   const run = await task.getRun('0190f0a3-6b2e-7000-8a1c-5d9e0c4b7f21');
   */
  async getRun(runId: string): Promise<TaskRun> {
    const dto = await this.#http.json<TaskRunDto>('GET', `/v1/task-runs/${encodeURIComponent(runId)}`);
    if (dto.taskId !== this.id) {
      throw errorFromCode(
        'task_run_not_found',
        `Task ${this.id} has no run "${runId}" (that run belongs to task ${dto.taskId}). Use lastRuns() to see its run ids.`,
        404,
        { runId, taskId: this.id },
      );
    }
    return new TaskRun(this.#http, dto);
  }

  /**
   * The cron ticks of a scheduled task that produced no run, newest first: `skipped` (the
   * previous run was still going) or `missed` (the server was down or late), with the reason.
   * @param limit at most this many. @default all
   */
  async ticks(options: { limit?: number } = {}): Promise<TaskTickList> {
    const ticks = await this.#http.json<TaskTickDto[]>(
      'GET',
      `/v1/tasks/${encodeURIComponent(this.id)}/ticks`,
      {
        query: { limit: options.limit },
      },
    );
    return TaskTickList.of_(ticks);
  }

  /** The status of the newest run, or `'unknown'` before the first. */
  async lastRunStatus(): Promise<TaskRunStatus | 'unknown'> {
    await this.refetch();
    return this.#dto.lastRunStatus;
  }

  private async refetch(): Promise<void> {
    this.#dto = await this.#http.json<TaskDto>('GET', `/v1/tasks/${encodeURIComponent(this.id)}`);
  }

  toJSON(): TaskDto {
    return structuredClone(this.#dto);
  }

  /** The seed's field table (ID, Name, Last Run Status, Type, Active, Schedule, …). */
  toString(): string {
    return renderFields([
      ['ID', this.id],
      ['Name', this.name],
      ['Last Run Status', this.#dto.lastRunStatus],
      ['Type', this.type],
      ['Active', this.active ? 'True' : 'False'],
      ['Schedule', this.schedule ?? '-'],
      ...(this.statusReason !== null ? [['Status Reason', this.statusReason] as [string, string]] : []),
      ['Created At', displayTime(this.createdAt)],
      ['Updated At', displayTime(this.updatedAt)],
      ['Workspace ID', this.workspaceId],
      ['Workspace Name', this.workspaceName],
    ]);
  }

  [inspectCustom](): string {
    return this.toString();
  }
}

/** Tasks, newest first; prints the seed's table or `(no tasks)`. */
export class TaskList extends PrintableList<Task> {
  /** `id | name | last run status | type | active | schedule | status reason | created at | updated at | workspace id | workspace name` */
  override toString(): string {
    if (this.length === 0) return '(no tasks)';
    return renderTable(
      [
        'id',
        'name',
        'last run status',
        'type',
        'active',
        'schedule',
        'status reason',
        'created at',
        'updated at',
        'workspace id',
        'workspace name',
      ],
      this.map((t) => {
        const dto = t.toJSON();
        return [
          t.id,
          t.name,
          dto.lastRunStatus,
          t.type,
          t.active ? 'True' : 'False',
          t.schedule ?? '-',
          t.statusReason ?? '-',
          displayTime(t.createdAt),
          displayTime(t.updatedAt),
          t.workspaceId,
          t.workspaceName,
        ];
      }),
    );
  }
}
