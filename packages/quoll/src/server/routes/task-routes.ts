import type { ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { ERROR_CODES } from '@quoll/client/wire';
import type { TaskDto, TaskRunDto, TaskRunStatus, TaskTickDto } from '@quoll/client/wire';
import type { TaskRecord, TaskRunRecord } from '../../scheduler/index.js';
import { toTaskDto, toTaskRunDto, toTaskTickDto } from '../../scheduler/index.js';
import type { Principal } from '../../auth/index.js';
import { ApiError } from '../../errors/index.js';
import type { ServerContext } from '../server-context.js';
import { principalOf } from '../server-context.js';
import { authenticateRequest } from '../authenticate-request.js';
import { taskRunLogLineSchema, taskRunSchema, taskSchema, taskTickSchema } from './schemas.js';
import { canSeeWorkspace } from '../../workspaces/index.js';
import { WORKSPACE_ID_QUERY, workspacesInScope } from './workspace-scope.js';

/** A JSON array of `items`, produced in pieces of about 64 KiB. */
async function* jsonArray(items: AsyncIterable<unknown>): AsyncGenerator<string> {
  let piece = '[';
  let first = true;
  for await (const item of items) {
    piece += (first ? '' : ',') + JSON.stringify(item);
    first = false;
    if (piece.length >= 65_536) {
      yield piece;
      piece = '';
    }
  }
  yield `${piece}]`;
}

/** Resolves when a response can take more data (or is gone). */
function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

/** Response header of `GET /v1/tasks/:id/runs` holding the next page's cursor (absent on the last page). */
export const RUNS_NEXT_CURSOR_HEADER = 'x-quoll-next-cursor';

/** Interval of the comment lines that keep an idle log stream (and its proxies) open. */
const HEARTBEAT_MS = 15_000;

/**
 * How often an open log stream checks that its token or session is still valid (a cached
 * lookup, no database query most times): a revoked or expired one ends the stream.
 */
export const STREAM_RECHECK_MS = 2_000;

const idParams = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'string' } },
} as const;

/** A task the principal can see; others answer exactly like a missing one. */
async function visibleTask(ctx: ServerContext, principal: Principal, id: string): Promise<TaskRecord> {
  let task: TaskRecord | null = null;
  try {
    task = await ctx.tasks.getTask(id);
  } catch (err) {
    if (!(err instanceof ApiError && err.code === 'task_not_found')) throw err;
  }
  if (task === null || !canSeeWorkspace(principal, task.workspaceId)) {
    throw new ApiError('task_not_found', `No task has id "${id}". List tasks to see their ids.`, {
      taskId: id,
    });
  }
  return task;
}

/** A run whose task the principal can see; others answer exactly like a missing one. */
async function visibleRun(ctx: ServerContext, principal: Principal, id: string): Promise<TaskRunRecord> {
  const run = await ctx.tasks.getRun(id);
  const task = await ctx.tasks.getTask(run.taskId).catch(() => null);
  if (task === null || !canSeeWorkspace(principal, task.workspaceId)) {
    throw new ApiError(
      'task_run_not_found',
      `No task run has id "${id}". Use lastRuns() on its task to see run ids.`,
      { runId: id },
    );
  }
  return run;
}

async function taskDto(ctx: ServerContext, principal: Principal, task: TaskRecord): Promise<TaskDto> {
  return toTaskDto(task, (await ctx.workspaces.getById(principal, task.workspaceId)).name);
}

/**
 * `/v1/tasks…` and `/v1/task-runs…`: list, get and kill tasks; list runs; read and follow
 * run logs (server-sent events). Workspace tokens see only their workspace's tasks.
 */
export function taskRoutes(app: FastifyInstance, ctx: ServerContext): void {
  // Open log streams end when the server closes, so a drain does not wait on a live run.
  const followers = new Set<AbortController>();
  app.addHook('preClose', (done) => {
    for (const f of followers) f.abort();
    done();
  });

  app.get<{
    Querystring: {
      killed?: boolean;
      workspaceName?: string;
      workspaceId?: string;
      orchestrationId?: string;
      orchestrationSha?: string;
    };
  }>(
    '/v1/tasks',
    {
      schema: {
        tags: ['tasks'],
        summary:
          'List tasks newest first across the workspaces the token can see; killed ones only with killed=true',
        querystring: {
          type: 'object',
          properties: {
            killed: { type: 'boolean' },
            workspaceName: { type: 'string' },
            workspaceId: WORKSPACE_ID_QUERY,
            orchestrationId: { type: 'string' },
            orchestrationSha: {
              type: 'string',
              description: 'only tasks of orchestrations whose zip has this SHA-256 (hex)',
            },
          },
        },
        response: { 200: { type: 'array', items: taskSchema } },
      },
    },
    async (req): Promise<TaskDto[]> => {
      const scope = await workspacesInScope(ctx, principalOf(req), req.query);
      const base = {
        killed: req.query.killed ?? false,
        ...(scope.size === 1 ? { workspaceId: [...scope.keys()][0] as number } : {}),
      };
      let orchestrationIds: (string | undefined)[] = [req.query.orchestrationId];
      const sha = req.query.orchestrationSha?.toLowerCase();
      if (sha !== undefined) {
        const orchestrations = await ctx.orchestrationStore.listOrchestrations(
          scope.size === 1 ? { workspaceId: [...scope.keys()][0] as number } : {},
        );
        orchestrationIds = orchestrations
          .filter((o) => o.sha === sha && scope.has(o.workspaceId))
          .map((o) => o.id)
          .filter((id) => req.query.orchestrationId === undefined || id === req.query.orchestrationId);
      }
      const lists = await Promise.all(
        orchestrationIds.map((orchestrationId) =>
          ctx.tasks.listTasks({ ...base, ...(orchestrationId !== undefined ? { orchestrationId } : {}) }),
        ),
      );
      // Newest first, as one list is (several lists only for a SHA shared by several uploads).
      const tasks =
        lists.length === 1
          ? (lists[0] ?? [])
          : lists.flat().sort((a, b) => b.createdAt.localeCompare(a.createdAt));
      return tasks.flatMap((t) => {
        const wsName = scope.get(t.workspaceId);
        return wsName === undefined ? [] : [toTaskDto(t, wsName)];
      });
    },
  );

  app.get<{ Params: { id: string } }>(
    '/v1/tasks/:id',
    {
      schema: {
        tags: ['tasks'],
        summary: 'Get a task (status re-read each call)',
        params: idParams,
        response: { 200: taskSchema },
      },
    },
    async (req): Promise<TaskDto> => {
      const principal = principalOf(req);
      return taskDto(ctx, principal, await visibleTask(ctx, principal, req.params.id));
    },
  );

  app.post<{ Params: { id: string } }>(
    '/v1/tasks/:id/kill',
    {
      schema: {
        tags: ['tasks'],
        summary:
          'Kill a task: no run starts after this; running runs get SIGTERM, then SIGKILL after a grace period',
        params: idParams,
        response: { 202: taskSchema },
      },
    },
    async (req, reply) => {
      const principal = principalOf(req);
      await visibleTask(ctx, principal, req.params.id);
      await ctx.tasks.kill(req.params.id);
      return reply.status(202).send(await taskDto(ctx, principal, await ctx.tasks.getTask(req.params.id)));
    },
  );

  app.get<{
    Params: { id: string };
    Querystring: { limit?: number; status?: TaskRunStatus | 'all'; cursor?: string };
  }>(
    '/v1/tasks/:id/runs',
    {
      schema: {
        tags: ['tasks'],
        summary: "A task's runs, newest first",
        description:
          'Without `limit`: every run. With `limit`: at most that many, and when older runs are left the ' +
          'x-quoll-next-cursor header holds a cursor: pass it as `cursor` (with the same status) for the next ' +
          'page. Every run that existed when paging started is listed once, in order. Runs created meanwhile ' +
          'sort before the first page, unless the node that created them has a clock behind the others ' +
          "(creation time is that node's clock): then they may sort into pages already read.",
        params: idParams,
        querystring: {
          type: 'object',
          properties: {
            limit: { type: 'integer', minimum: 0 },
            status: { type: 'string', enum: ['all', 'running', 'success', 'failure', 'timed_out', 'killed'] },
            cursor: {
              type: 'string',
              description: 'The x-quoll-next-cursor header of the previous page.',
            },
          },
        },
        response: { 200: { type: 'array', items: taskRunSchema } },
      },
    },
    async (req, reply): Promise<TaskRunDto[]> => {
      await visibleTask(ctx, principalOf(req), req.params.id);
      const page = await ctx.tasks.listRunsPage(req.params.id, {
        ...(req.query.limit !== undefined ? { limit: req.query.limit } : {}),
        ...(req.query.status !== undefined ? { status: req.query.status } : {}),
        ...(req.query.cursor !== undefined && req.query.cursor !== '' ? { cursor: req.query.cursor } : {}),
      });
      if (page.nextCursor !== null) void reply.header(RUNS_NEXT_CURSOR_HEADER, page.nextCursor);
      return page.runs.map(toTaskRunDto);
    },
  );

  app.get<{ Params: { id: string }; Querystring: { limit?: number } }>(
    '/v1/tasks/:id/ticks',
    {
      schema: {
        tags: ['tasks'],
        summary:
          "A scheduled task's cron ticks that produced no run, newest first: skipped (the previous run was still going) or missed (the server was down or late), with the reason",
        params: idParams,
        querystring: { type: 'object', properties: { limit: { type: 'integer', minimum: 0 } } },
        response: { 200: { type: 'array', items: taskTickSchema } },
      },
    },
    async (req): Promise<TaskTickDto[]> => {
      await visibleTask(ctx, principalOf(req), req.params.id);
      const ticks = await ctx.tasks.listTicks(
        req.params.id,
        req.query.limit !== undefined ? { limit: req.query.limit } : {},
      );
      return ticks.map(toTaskTickDto);
    },
  );

  app.get<{ Params: { id: string } }>(
    '/v1/task-runs/:id',
    {
      schema: {
        tags: ['tasks'],
        summary: 'Get a task run',
        params: idParams,
        response: { 200: taskRunSchema },
      },
    },
    async (req): Promise<TaskRunDto> => toTaskRunDto(await visibleRun(ctx, principalOf(req), req.params.id)),
  );

  app.get<{ Params: { id: string }; Querystring: { limit?: number } }>(
    '/v1/task-runs/:id/logs',
    {
      schema: {
        tags: ['tasks'],
        summary:
          "A run's captured output, oldest first; limit = the last N lines. Ends with the final status line once the run is over",
        params: idParams,
        querystring: { type: 'object', properties: { limit: { type: 'integer', minimum: 0 } } },
        response: { 200: { type: 'array', items: taskRunLogLineSchema } },
      },
    },
    async (req, reply) => {
      await visibleRun(ctx, principalOf(req), req.params.id);
      const lines = await ctx.tasks.runLogLines(
        req.params.id,
        req.query.limit !== undefined ? { limit: req.query.limit } : {},
      );
      // Streamed (a run's log may be large): the array is written as it is read.
      return reply.type('application/json; charset=utf-8').send(Readable.from(jsonArray(lines)));
    },
  );

  app.get<{ Params: { id: string } }>(
    '/v1/task-runs/:id/logs/follow',
    {
      schema: {
        tags: ['tasks'],
        summary:
          'Follow a run\'s output as server-sent events: one "line" event per line (data = {time, stream, line}), existing lines first, then an "end" event after the final status line. When the token or console session is revoked or expires, an "error" event (data = {code, message, status}, e.g. invalid_token) ends the stream within seconds. A stream that closes without "end" (server shutdown) did not see the run finish',
        params: idParams,
        produces: ['text/event-stream'],
      },
    },
    async (req, reply) => {
      await visibleRun(ctx, principalOf(req), req.params.id);
      const abort = new AbortController();
      let sawFinal = false;
      let refused = false;
      const lines = await ctx.tasks.followRunLog(req.params.id, abort.signal, () => (sawFinal = true));
      // Registered only once following has begun, and always removed below.
      followers.add(abort);
      reply.hijack();
      const res = reply.raw;
      let heartbeat: NodeJS.Timeout | undefined;
      let recheck: NodeJS.Timeout | undefined;
      try {
        res.writeHead(200, {
          'content-type': 'text/event-stream; charset=utf-8',
          'cache-control': 'no-store',
          connection: 'keep-alive',
          'x-accel-buffering': 'no',
        });
        res.flushHeaders();
        // The client went away: stop reading the log.
        res.once('close', () => abort.abort());
        heartbeat = setInterval(() => res.write(': keep-alive\n\n'), HEARTBEAT_MS);
        // The token or session was checked once, above: a stream may outlive it by hours. Once
        // it is revoked or expired, an "error" event (the catalogue's code) ends the stream.
        recheck = setInterval(() => {
          authenticateRequest(ctx, req).then(
            () => undefined,
            (err: unknown) => {
              if (abort.signal.aborted || res.destroyed) return;
              if (!(err instanceof ApiError) || ERROR_CODES[err.code].status !== 401) {
                // The store could not answer (an outage): the next check tries again.
                req.log.warn({ err }, 'rechecking the token of a log stream failed');
                return;
              }
              const status = ERROR_CODES[err.code].status;
              refused = true;
              res.write(
                `event: error\ndata: ${JSON.stringify({ code: err.code, message: err.message, status })}\n\n`,
              );
              abort.abort();
            },
          );
        }, STREAM_RECHECK_MS);
        for await (const line of lines) {
          if (res.destroyed) break;
          // A slow client slows the read down instead of buffering the log in memory.
          if (!res.write(`event: line\ndata: ${JSON.stringify(line)}\n\n`)) await drained(res);
        }
        // "end" promises the run is over: only after its final status line, never on a
        // shutdown abort (the client then reports that the stream ended early).
        if (sawFinal && !refused && !res.destroyed) res.write(`event: end\ndata: {}\n\n`);
      } catch (err) {
        if (!abort.signal.aborted) req.log.error({ err }, 'following a run log failed');
      } finally {
        clearInterval(heartbeat);
        clearInterval(recheck);
        followers.delete(abort);
        abort.abort();
        res.end();
      }
    },
  );
}
