import { errorFromCode } from '../errors/index.js';
import { inspectCustom, PrintableList, renderFields, renderTable } from '../format/index.js';
import type { HttpTransport } from '../http/index.js';
import { Task, TaskList, displayTime } from '../tasks/index.js';
import type {
  CreateTaskRequestDto,
  OrchestrationDto,
  OrchestrationStatus,
  PackagingLogLineDto,
  TaskDto,
  TaskLimitsDto,
} from '../wire/index.js';

/** Options of `runOnce()`. */
export interface RunOnceOptions {
  name: string;
  /** Given to the run as `taskArgs()`. @default {} */
  jsonArgs?: Record<string, unknown>;
  /** Seconds the run may last before it is stopped as `timed_out`. @default 900 */
  timeout?: number;
  /**
   * Tighter resource limits for the run than the server's, e.g. `{ memoryBytes: 512 * 1024 ** 2, processes: 64 }`;
   * a limit above the server's is a `ValidationError`. @default the server's
   */
  limits?: TaskLimitsDto;
}

/** Options of `runScheduled()`. */
export interface RunScheduledOptions extends RunOnceOptions {
  /** 5-field cron, e.g. `'*\/5 * * * *'`; the seed's comma form `'*\/1, *, *, *, *'` is accepted. */
  schedule: string;
  /** IANA time zone the schedule is read in. @default 'UTC' */
  timezone?: string;
}

/** Options of `runContinuously()`. */
export interface RunContinuouslyOptions {
  name: string;
  /** @default {} */
  jsonArgs?: Record<string, unknown>;
  /** Tighter resource limits for each run than the server's (see `RunOnceOptions.limits`). @default the server's */
  limits?: TaskLimitsDto;
}

/** One line of a packaging log; prints as `<time> <source> <line>`. */
export class PackagingLogLine implements PackagingLogLineDto {
  readonly time: string;
  readonly source: PackagingLogLineDto['source'];
  readonly line: string;

  /** @internal */
  constructor(dto: PackagingLogLineDto) {
    this.time = dto.time;
    this.source = dto.source;
    this.line = dto.line;
  }

  toString(): string {
    return `${this.time} ${this.source} ${this.line}`;
  }

  [inspectCustom](): string {
    return this.toString();
  }
}

/** A packaging log, oldest first; prints one line each. */
export class PackagingLogs extends PrintableList<PackagingLogLine> {
  /** @internal */
  static of_(lines: readonly PackagingLogLineDto[]): PackagingLogs {
    return PackagingLogs.fill(lines.map((l) => new PackagingLogLine(l)));
  }

  override toString(): string {
    return this.length === 0 ? '(no packaging logs yet)' : this.map(String).join('\n');
  }
}

/**
 * User code uploaded as a zip, packaged in the background
 * (`pending_packaging` → `packaging` → `ready` | `error`) and run as tasks.
 * @example
 *   const orchestration = await client.uploadOrchestration({ path: './remote_inference.zip' }, { name: 'houseprice' });
 *   while ((await orchestration.status()) !== 'ready') await new Promise((r) => setTimeout(r, 200));
 *   const task = await orchestration.runOnce({ name: 'run once', jsonArgs: { pipeline_name: 'p' } });
 */
export class Orchestration {
  readonly #http: HttpTransport;
  #dto: OrchestrationDto;

  /** @internal */
  constructor(http: HttpTransport, dto: OrchestrationDto) {
    this.#http = http;
    this.#dto = { ...dto };
  }

  get id(): string {
    return this.#dto.id;
  }
  /** May be empty. */
  get name(): string {
    return this.#dto.name;
  }
  get fileName(): string {
    return this.#dto.fileName;
  }
  /** SHA-256 (hex) of the uploaded zip. */
  get sha(): string {
    return this.#dto.sha;
  }
  get workspaceId(): number {
    return this.#dto.workspaceId;
  }
  get workspaceName(): string {
    return this.#dto.workspaceName;
  }
  get createdAt(): string {
    return this.#dto.createdAt;
  }
  get updatedAt(): string {
    return this.#dto.updatedAt;
  }
  /** Why packaging failed (as of the last fetch), when it did. */
  get error(): string | null {
    return this.#dto.error;
  }

  /** The packaging status, re-read from the server. */
  async status(): Promise<OrchestrationStatus> {
    this.#dto = await this.#http.json<OrchestrationDto>(
      'GET',
      `/v1/orchestrations/${encodeURIComponent(this.id)}`,
    );
    return this.#dto.status;
  }

  /**
   * Polls until packaging is over; resolves on `ready`, throws a `ConflictError` (`orchestration_not_ready`) with the
   * packaging error on `error`.
   * @param timeoutMs give up after this long. @default 300000
   * @param intervalMs time between polls. @default 100
   */
  async waitUntilReady(options: { timeoutMs?: number; intervalMs?: number } = {}): Promise<Orchestration> {
    const deadline = Date.now() + (options.timeoutMs ?? 300_000);
    for (;;) {
      const status = await this.status();
      if (status === 'ready') return this;
      if (status === 'error') {
        throw errorFromCode(
          'orchestration_not_ready',
          `Packaging of orchestration ${this.id} failed: ${this.error ?? 'see packagingLogs()'}`,
          0,
          { orchestrationId: this.id },
        );
      }
      if (Date.now() > deadline) {
        throw errorFromCode(
          'timeout',
          `Orchestration ${this.id} is still ${status}; see packagingLogs().`,
          0,
        );
      }
      await new Promise((r) => setTimeout(r, options.intervalMs ?? 100));
    }
  }

  /** What quoll, npm and esbuild said while packaging, oldest first. */
  async packagingLogs(): Promise<PackagingLogs> {
    return PackagingLogs.of_(
      await this.#http.json<PackagingLogLineDto[]>(
        'GET',
        `/v1/orchestrations/${encodeURIComponent(this.id)}/packaging-logs`,
      ),
    );
  }

  /** Runs the orchestration once, now (a `Temporary Run`). */
  async runOnce(options: RunOnceOptions): Promise<Task> {
    return this.createTask({
      type: 'once',
      name: options.name,
      jsonArgs: options.jsonArgs ?? {},
      timeout: options.timeout,
      limits: options.limits,
    });
  }

  /** Runs the orchestration at every tick of a cron schedule (a `Scheduled Run`); an invalid schedule is a `ValidationError`. */
  async runScheduled(options: RunScheduledOptions): Promise<Task> {
    return this.createTask({
      type: 'scheduled',
      name: options.name,
      schedule: options.schedule,
      jsonArgs: options.jsonArgs ?? {},
      timeout: options.timeout,
      timezone: options.timezone,
      limits: options.limits,
    });
  }

  /** Keeps one run going, restarting it with backoff when it exits, until killed (a `Continuous Run`). */
  async runContinuously(options: RunContinuouslyOptions): Promise<Task> {
    return this.createTask({
      type: 'continuous',
      name: options.name,
      jsonArgs: options.jsonArgs ?? {},
      limits: options.limits,
    });
  }

  /** This orchestration's tasks, newest first (killed ones only with `{ killed: true }`). */
  async listTasks(options: { killed?: boolean } = {}): Promise<TaskList> {
    const dtos = await this.#http.json<TaskDto[]>(
      'GET',
      `/v1/orchestrations/${encodeURIComponent(this.id)}/tasks`,
      {
        query: { killed: options.killed },
      },
    );
    return TaskList.fill(dtos.map((d) => new Task(this.#http, d)));
  }

  private async createTask(body: CreateTaskRequestDto): Promise<Task> {
    const json = Object.fromEntries(Object.entries(body).filter(([, v]) => v !== undefined));
    return new Task(
      this.#http,
      await this.#http.json<TaskDto>('POST', `/v1/orchestrations/${encodeURIComponent(this.id)}/tasks`, {
        json,
      }),
    );
  }

  toJSON(): OrchestrationDto {
    return { ...this.#dto };
  }

  /** The seed's field table: ID, Name, File Name, SHA (full), Status, Created At, Updated At, Workspace ID, Workspace Name. */
  toString(): string {
    return renderFields([
      ['ID', this.id],
      ['Name', this.name === '' ? null : this.name],
      ['File Name', this.fileName],
      ['SHA', this.sha],
      ['Status', this.#dto.status],
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

/** `4dd816...df4e12`: the seed's short SHA in listings. */
export function shortSha(sha: string): string {
  return sha.length <= 15 ? sha : `${sha.slice(0, 6)}...${sha.slice(-6)}`;
}

/** Orchestrations, oldest first; prints the seed's table or `(no orchestrations)`. */
export class OrchestrationList extends PrintableList<Orchestration> {
  /** `id | name | status | filename | sha | created at | updated at | workspace id | workspace name` */
  override toString(): string {
    if (this.length === 0) return '(no orchestrations)';
    return renderTable(
      [
        'id',
        'name',
        'status',
        'filename',
        'sha',
        'created at',
        'updated at',
        'workspace id',
        'workspace name',
      ],
      this.map((o) => [
        o.id,
        o.name === '' ? null : o.name,
        o.toJSON().status,
        o.fileName,
        shortSha(o.sha),
        displayTime(o.createdAt),
        displayTime(o.updatedAt),
        o.workspaceId,
        o.workspaceName,
      ]),
    );
  }
}
