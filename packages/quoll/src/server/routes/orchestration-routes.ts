import type { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import type {
  CreateTaskRequestDto,
  OrchestrationDto,
  PackagingLogLineDto,
  TaskDto,
} from '@quoll/client/wire';
import { entrypointRuntime } from '../../orchestrations/index.js';
import type { OrchestrationRecord } from '../../orchestrations/index.js';
import { toTaskDto } from '../../scheduler/index.js';
import type { Principal } from '../../auth/index.js';
import { ApiError } from '../../errors/index.js';
import type { ServerContext } from '../server-context.js';
import { principalOf, workspaceIdOf } from '../server-context.js';
import { orchestrationSchema, packagingLogLineSchema, taskSchema } from './schemas.js';
import { canSeeWorkspace } from '../../workspaces/index.js';
import { WORKSPACE_ID_QUERY, workspacesInScope } from './workspace-scope.js';
import { unsupportedMediaType } from '../error-handler.js';
import {
  MULTIPART_SLACK_BYTES,
  acceptMultipart,
  dispositionFileName,
  readMultipartUpload,
  textField,
  type MultipartUpload,
} from '../multipart-upload.js';

/** Largest orchestration zip accepted, as uploaded (the expanded size has its own cap). */
export const MAX_ORCHESTRATION_UPLOAD_BYTES = 256 * 1024 * 1024;

const idParams = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'string' } },
} as const;

/** The wire form of a stored orchestration. */
function toDto(record: OrchestrationRecord, workspaceName: string): OrchestrationDto {
  return {
    id: record.id,
    name: record.name,
    fileName: record.fileName,
    sha: record.sha,
    status: record.status,
    error: record.error,
    entrypoint: record.entrypoint,
    runtime: record.entrypoint === null ? null : entrypointRuntime(record.entrypoint),
    workspaceId: record.workspaceId,
    workspaceName,
    createdAt: record.createdAt,
    updatedAt: record.updatedAt,
  };
}

/** An orchestration the principal can see; others answer exactly like a missing one. */
export async function visibleOrchestration(
  ctx: ServerContext,
  principal: Principal,
  id: string,
): Promise<OrchestrationRecord> {
  const record = await ctx.orchestrationStore.getOrchestration(id);
  if (record === null || !canSeeWorkspace(principal, record.workspaceId)) {
    throw new ApiError(
      'orchestration_not_found',
      `No orchestration has id "${id}"; listOrchestrations() shows the ones you can use.`,
      { id },
    );
  }
  return record;
}

async function workspaceName(ctx: ServerContext, principal: Principal, id: number): Promise<string> {
  return (await ctx.workspaces.getById(principal, id)).name;
}

/**
 * `/v1/workspaces/:workspaceId/orchestrations` (upload) and `/v1/orchestrations…` (list, get,
 * packaging logs, create a task). Workspace tokens see only their workspace's orchestrations.
 */
export function orchestrationRoutes(app: FastifyInstance, ctx: ServerContext): void {
  // Zips are streamed to a temporary file: the parser hands the raw request stream over.
  for (const type of ['application/zip', 'application/octet-stream', 'application/x-zip-compressed']) {
    app.addContentTypeParser(type, (_req, payload, done) => done(null, payload));
  }
  // Or a multipart form with a `file` part, as Wallaroo's API clients send it.
  void acceptMultipart(app);

  app.post<{ Params: { workspaceId: string }; Querystring: { name?: string; fileName?: string } }>(
    '/v1/workspaces/:workspaceId/orchestrations',
    {
      config: {
        accepts: [
          'application/zip',
          'application/x-zip-compressed',
          'application/octet-stream',
          'multipart/form-data',
        ],
        maxBodyBytes: MAX_ORCHESTRATION_UPLOAD_BYTES + MULTIPART_SLACK_BYTES,
      },
      schema: {
        tags: ['orchestrations'],
        summary:
          'Upload an orchestration zip; answers 201 in pending_packaging, packaging runs in the background',
        description:
          'The body is the zip (application/zip or application/octet-stream), or a multipart/form-data form with the zip in a part named "file" and the name as a field or in a JSON "metadata" part ({"name": "…"}), as Wallaroo\'s API clients send it. The file name defaults to the form part\'s file name, then to the Content-Disposition filename, then to <name>.zip (orchestration.zip without a name).',
        querystring: {
          type: 'object',
          properties: {
            name: { type: 'string', description: 'orchestration name (may be empty)' },
            fileName: { type: 'string', description: 'file name to record' },
          },
        },
        response: { 201: orchestrationSchema },
      },
    },
    async (req, reply) => {
      const principal = principalOf(req);
      const workspaceId = await workspaceIdOf(ctx, req);
      let form: MultipartUpload | null = null;
      if (req.isMultipart()) {
        form = await readMultipartUpload(req, ctx.blobs, MAX_ORCHESTRATION_UPLOAD_BYTES, 'orchestration zip');
      } else if (typeof (req.body as Partial<Readable> | undefined)?.pipe !== 'function') {
        throw unsupportedMediaType(req);
      }
      const name = req.query.name ?? (form === null ? undefined : textField(form.fields, 'name')) ?? '';
      if (name.length > 200) {
        await form?.discard();
        throw new ApiError(
          'invalid_name',
          `The orchestration name is ${name.length} characters; use at most 200.`,
        );
      }
      const given =
        req.query.fileName ||
        form?.fileName ||
        (form === null ? undefined : textField(form.fields, 'fileName', 'file_name')) ||
        dispositionFileName(req.headers['content-disposition']);
      const fileName = given || (name === '' ? 'orchestration.zip' : `${name}.zip`);
      const upload =
        form?.file ??
        (await ctx.blobs.receive(req.body as Readable, MAX_ORCHESTRATION_UPLOAD_BYTES, 'orchestration zip'));
      const record = await ctx.packager.submit({ workspaceId, name, fileName, upload });
      return reply.status(201).send(toDto(record, await workspaceName(ctx, principal, workspaceId)));
    },
  );

  app.get<{ Querystring: { workspaceName?: string; workspaceId?: string } }>(
    '/v1/orchestrations',
    {
      schema: {
        tags: ['orchestrations'],
        summary:
          'List orchestrations, oldest first, across the workspaces the token can see (or one workspace)',
        querystring: {
          type: 'object',
          properties: { workspaceName: { type: 'string' }, workspaceId: WORKSPACE_ID_QUERY },
        },
        response: { 200: { type: 'array', items: orchestrationSchema } },
      },
    },
    async (req): Promise<OrchestrationDto[]> => {
      const scope = await workspacesInScope(ctx, principalOf(req), req.query);
      const filter = scope.size === 1 ? { workspaceId: [...scope.keys()][0] as number } : {};
      const records = await ctx.orchestrationStore.listOrchestrations(filter);
      return records.flatMap((r) => {
        const wsName = scope.get(r.workspaceId);
        return wsName === undefined ? [] : [toDto(r, wsName)];
      });
    },
  );

  app.get<{ Params: { id: string } }>(
    '/v1/orchestrations/:id',
    {
      schema: {
        tags: ['orchestrations'],
        summary: 'Get an orchestration (its status is re-read each call)',
        params: idParams,
        response: { 200: orchestrationSchema },
      },
    },
    async (req): Promise<OrchestrationDto> => {
      const principal = principalOf(req);
      const record = await visibleOrchestration(ctx, principal, req.params.id);
      return toDto(record, await workspaceName(ctx, principal, record.workspaceId));
    },
  );

  app.get<{ Params: { id: string } }>(
    '/v1/orchestrations/:id/packaging-logs',
    {
      schema: {
        tags: ['orchestrations'],
        summary: 'The packaging log (quoll, npm and esbuild lines), oldest first',
        params: idParams,
        response: { 200: { type: 'array', items: packagingLogLineSchema } },
      },
    },
    async (req): Promise<PackagingLogLineDto[]> => {
      await visibleOrchestration(ctx, principalOf(req), req.params.id);
      return ctx.orchestrationStore.getPackagingLog(req.params.id);
    },
  );

  app.get<{ Params: { id: string }; Querystring: { killed?: boolean } }>(
    '/v1/orchestrations/:id/tasks',
    {
      schema: {
        tags: ['tasks'],
        summary: "The orchestration's tasks, newest first (killed ones only with killed=true)",
        params: idParams,
        querystring: { type: 'object', properties: { killed: { type: 'boolean' } } },
        response: { 200: { type: 'array', items: taskSchema } },
      },
    },
    async (req): Promise<TaskDto[]> => {
      const principal = principalOf(req);
      const record = await visibleOrchestration(ctx, principal, req.params.id);
      const wsName = await workspaceName(ctx, principal, record.workspaceId);
      const tasks = await ctx.tasks.listTasks({
        orchestrationId: record.id,
        killed: req.query.killed ?? false,
      });
      return tasks.map((t) => toTaskDto(t, wsName));
    },
  );

  app.post<{ Params: { id: string }; Body: CreateTaskRequestDto }>(
    '/v1/orchestrations/:id/tasks',
    {
      schema: {
        tags: ['tasks'],
        summary:
          'Create a task: run once, on a cron schedule, or continuously (the orchestration must be ready)',
        params: idParams,
        body: {
          type: 'object',
          required: ['type', 'name'],
          properties: {
            type: { type: 'string', enum: ['once', 'scheduled', 'continuous'] },
            name: { type: 'string' },
            // Left untyped so the service answers its precise invalid_task_args errors.
            jsonArgs: { description: 'Any JSON object, given to the run as QUOLL_TASK_ARGS' },
            schedule: { type: 'string', description: '5-field cron, e.g. "*/5 * * * *" (scheduled only)' },
            timezone: {
              type: ['string', 'null'],
              description: 'IANA time zone of the schedule; default UTC',
            },
            timeout: { description: 'Seconds per run (whole number); default 900; continuous: none' },
            // Untyped too: the service names the bad limit and the server's ceiling.
            limits: {
              description:
                "Tighter resource limits for each run than the server's: { memoryBytes, processes, openFiles, cpuSeconds, diskBytes } (whole numbers)",
            },
          },
          additionalProperties: false,
        },
        response: { 201: taskSchema },
      },
    },
    async (req, reply) => {
      const principal = principalOf(req);
      const record = await visibleOrchestration(ctx, principal, req.params.id);
      const body = req.body;
      const base = {
        orchestrationId: record.id,
        workspaceId: record.workspaceId,
        name: body.name,
        jsonArgs: body.jsonArgs,
        limits: body.limits,
        creator: principal.kind,
      };
      let task;
      switch (body.type) {
        case 'once':
          task = await ctx.tasks.createOnce({ ...base, timeout: body.timeout });
          break;
        case 'scheduled':
          if (typeof body.schedule !== 'string') {
            throw new ApiError(
              'invalid_schedule',
              'A scheduled task needs a schedule, e.g. "*/5 * * * *" (every five minutes, UTC).',
            );
          }
          task = await ctx.tasks.createScheduled({
            ...base,
            schedule: body.schedule,
            timezone: body.timezone,
            timeout: body.timeout,
          });
          break;
        case 'continuous':
          if (body.timeout !== undefined && body.timeout !== null) {
            throw new ApiError(
              'invalid_task_args',
              'Continuous tasks take no timeout: they run until killed.',
            );
          }
          task = await ctx.tasks.createContinuous(base);
          break;
      }
      return reply.status(201).send(toTaskDto(task, await workspaceName(ctx, principal, record.workspaceId)));
    },
  );
}
