import { QuollError, errorFromCode, errorFromResponse } from '../errors/index.js';
import { inspectCustom, PrintableList, renderFields, renderTable } from '../format/index.js';
import type { HttpTransport } from '../http/index.js';
import type { TaskRunDto, TaskRunLogLineDto, TaskRunStatus } from '../wire/index.js';
import { displayTime } from './display-time.js';

/** Longest a `followLogs()` stream may stay open (the largest timer Node accepts, ~24.8 days). */
const FOLLOW_TIMEOUT_MS = 2_147_483_647;

/**
 * One captured line of a run's output. `toString()` is the CRI log format the seed shows:
 * `<RFC3339 with ns>Z <stream> F <line>`.
 */
export class TaskRunLogLine implements TaskRunLogLineDto {
  /** RFC 3339 with nanoseconds, UTC. */
  readonly time: string;
  readonly stream: 'stdout' | 'stderr';
  readonly line: string;

  /** @internal */
  constructor(dto: TaskRunLogLineDto) {
    this.time = dto.time;
    this.stream = dto.stream;
    this.line = dto.line;
  }

  /** `2024-12-09T21:21:40.373619457Z stdout F Getting the pipeline …` */
  toString(): string {
    const time = this.time.endsWith('Z') ? this.time : `${this.time}Z`;
    return `${time} ${this.stream} F ${this.line}`;
  }

  [inspectCustom](): string {
    return this.toString();
  }
}

/** A run's log lines, oldest first; prints one line each, or `(no logs yet)`. */
export class TaskRunLogs extends PrintableList<TaskRunLogLine> {
  /** @internal */
  static of_(lines: readonly TaskRunLogLineDto[]): TaskRunLogs {
    return TaskRunLogs.fill(lines.map((l) => new TaskRunLogLine(l)));
  }

  override toString(): string {
    return this.length === 0 ? '(no logs yet)' : this.map((l) => l.toString()).join('\n');
  }
}

/**
 * One run of a task: its outcome and its captured output.
 * @example
 *   const [run] = await task.lastRuns();
 *   console.log(run.status, String(await run.logs({ limit: 20 })));
 *   for await (const line of run.followLogs()) console.log(String(line));
 */
export class TaskRun {
  readonly #http: HttpTransport;
  readonly #dto: TaskRunDto;

  /** @internal */
  constructor(http: HttpTransport, dto: TaskRunDto) {
    this.#http = http;
    this.#dto = { ...dto };
  }

  /** The run's UUID (the seed's "Pod ID"). */
  get id(): string {
    return this.#dto.id;
  }
  get taskId(): string {
    return this.#dto.taskId;
  }
  /** The status when this object was fetched; `refresh()` re-reads it. */
  get status(): TaskRunStatus {
    return this.#dto.status;
  }
  get createdAt(): string {
    return this.#dto.createdAt;
  }
  get updatedAt(): string {
    return this.#dto.updatedAt;
  }
  /** The process exit code, when it exited on its own. */
  get exitCode(): number | null {
    return this.#dto.exitCode;
  }
  /** Why it ended that way (e.g. `exit 1`, `killed after 60 s`, the lost-run reason). */
  get reason(): string | null {
    return this.#dto.reason;
  }
  /** The nominal cron tick of a scheduled run (RFC 3339), else null. */
  get tick(): string | null {
    return this.#dto.tick;
  }
  /** The id of the node that runs (or ran) it; null while it waits for one (or from an older server). */
  get node(): string | null {
    return this.#dto.node ?? null;
  }

  /** The same run, re-read from the server. */
  async refresh(): Promise<TaskRun> {
    return new TaskRun(
      this.#http,
      await this.#http.json<TaskRunDto>('GET', `/v1/task-runs/${encodeURIComponent(this.id)}`),
    );
  }

  /**
   * The run's captured output, oldest first; `limit` keeps the last N lines. A finished
   * run's log ends with `quoll: run finished: <status> (<reason>)`.
   * @param limit how many of the newest lines. @default all
   */
  async logs(options: { limit?: number } = {}): Promise<TaskRunLogs> {
    const lines = await this.#http.json<TaskRunLogLineDto[]>(
      'GET',
      `/v1/task-runs/${encodeURIComponent(this.id)}/logs`,
      {
        query: { limit: options.limit },
      },
    );
    return TaskRunLogs.of_(lines);
  }

  /**
   * The run's output as it is printed: existing lines first, then live ones; the iteration
   * ends after the final status line (or when `signal` aborts, or the loop breaks). When
   * the server closes the stream before the run finished (it is shutting down), the
   * iteration throws a `QuollError` with code `shutting_down`; follow again once it is back.
   * When the token (or console session) is revoked or expires meanwhile, the server ends the
   * stream and the iteration throws an `AuthError` (`invalid_token`).
   * @param signal stops following. @default none
   * @example for await (const line of run.followLogs()) console.log(String(line));
   */
  async *followLogs(options: { signal?: AbortSignal } = {}): AsyncGenerator<TaskRunLogLine, void, undefined> {
    const local = new AbortController();
    const signal = options.signal ? AbortSignal.any([options.signal, local.signal]) : local.signal;
    const res = await this.#http.send('GET', `/v1/task-runs/${encodeURIComponent(this.id)}/logs/follow`, {
      accept: 'text/event-stream',
      timeoutMs: FOLLOW_TIMEOUT_MS,
      signal,
    });
    if (res.body === null) return;
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for (;;) {
        let chunk: { done: true; value?: Uint8Array } | { done: false; value: Uint8Array };
        try {
          chunk = await reader.read();
        } catch (err) {
          if (options.signal?.aborted === true) return;
          throw new QuollError(
            'internal_error',
            `The log stream of run ${this.id} broke: ${(err as Error).message}`,
            0,
          );
        }
        if (chunk.done) {
          // Only the "end" event promises that the run is over; a bare close does not.
          if (options.signal?.aborted === true) return;
          throw errorFromCode(
            'shutting_down',
            `The log stream of run ${this.id} ended before the run finished (the server stopped or closed the stream); follow again to see the rest.`,
            0,
            { runId: this.id },
          );
        }
        buffer += decoder.decode(chunk.value, { stream: true });
        // Events are separated by a blank line; a partial event waits for the next chunk.
        let cut: number;
        while ((cut = buffer.indexOf('\n\n')) >= 0) {
          const event = parseEvent(buffer.slice(0, cut));
          buffer = buffer.slice(cut + 2);
          if (event === null) continue;
          if (event.type === 'end') return;
          if (event.type === 'error') {
            // The server ended the stream: the token or session was revoked or expired.
            const e = JSON.parse(event.data) as { code?: unknown; message?: unknown; status?: unknown };
            throw errorFromResponse(typeof e.status === 'number' ? e.status : 0, {
              error: { code: e.code, message: e.message },
            });
          }
          if (event.type === 'line') yield new TaskRunLogLine(JSON.parse(event.data) as TaskRunLogLineDto);
        }
      }
    } finally {
      // Breaking out of the loop closes the stream, so the server stops following too.
      local.abort();
      reader.releaseLock();
    }
  }

  toJSON(): TaskRunDto {
    return { ...this.#dto };
  }

  /** The seed's field table: Task, Pod ID, Status, Created At, Updated At (+ exit code and reason). */
  toString(): string {
    return renderFields([
      ['Task', this.taskId],
      ['Pod ID', this.id],
      ['Status', this.status],
      ['Exit Code', this.exitCode],
      ['Reason', this.reason],
      ['Created At', displayTime(this.createdAt)],
      ['Updated At', displayTime(this.updatedAt)],
    ]);
  }

  [inspectCustom](): string {
    return this.toString();
  }
}

/** A list of runs, newest first; prints the seed's `task id | pod id | status | created at | updated at`. */
export class TaskRunList extends PrintableList<TaskRun> {
  #nextCursor: string | null = null;

  /** @internal A page of runs and the cursor of the next one. */
  static page(runs: Iterable<TaskRun>, nextCursor: string | null): TaskRunList {
    const list = TaskRunList.fill(runs);
    list.#nextCursor = nextCursor;
    return list;
  }

  /**
   * Pass as `cursor` to `task.lastRuns()` (same `limit` and `status`) for the next, older page;
   * null when no older run is left (always for a list asked without a `limit`).
   */
  get nextCursor(): string | null {
    return this.#nextCursor;
  }

  override toString(): string {
    if (this.length === 0) return '(no task runs)';
    return renderTable(
      ['task id', 'pod id', 'status', 'created at', 'updated at'],
      this.map((r) => [r.taskId, r.id, r.status, displayTime(r.createdAt), displayTime(r.updatedAt)]),
    );
  }
}

/** One server-sent event: its type and data (comment lines such as heartbeats give null). */
function parseEvent(block: string): { type: string; data: string } | null {
  let type = 'message';
  const data: string[] = [];
  for (const line of block.split('\n')) {
    if (line.startsWith(':') || line === '') continue;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'event') type = value;
    else if (field === 'data') data.push(value);
  }
  return data.length === 0 && type === 'message' ? null : { type, data: data.join('\n') };
}
