import type { FastifyInstance } from 'fastify';
import type { ServerContext } from '../server-context.js';
import { ApiError } from '../../errors/index.js';
import { principalOf, workspaceIdParam } from '../server-context.js';
import { checkCookieMayChange } from '../authenticate-request.js';
import { workspaceSchema } from './schemas.js';
import { RESERVED_SUBJECT_PREFIXES, TASK_RUN_SUBJECT_PREFIX, type Principal } from '../../auth/index.js';

/** The longest life a workspace token can be given: ten years, in seconds. */
export const MAX_TOKEN_TTL_SECONDS = 10 * 365 * 24 * 60 * 60;

/**
 * The workspace of the task whose run holds this token (an admin-rights run still works in
 * its task's workspace by default); undefined for other tokens.
 */
async function runWorkspaceOf(ctx: ServerContext, principal: Principal): Promise<number | undefined> {
  if (principal.kind !== 'admin' || !principal.subject.startsWith(TASK_RUN_SUBJECT_PREFIX)) return undefined;
  try {
    const run = await ctx.tasks.getRun(principal.subject.slice(TASK_RUN_SUBJECT_PREFIX.length));
    return (await ctx.tasks.getTask(run.taskId)).workspaceId;
  } catch (err) {
    // The run or task is gone (the token outlived it by a moment): the default workspace.
    if (err instanceof ApiError) return undefined;
    throw err;
  }
}

/** `/v1/me`, `/v1/workspaces`. */
export function workspaceRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.get(
    '/v1/me',
    {
      schema: {
        tags: ['workspaces'],
        summary:
          "Who the token is, and its default workspace (a task run's token: the task's workspace, whatever its rights)",
      },
    },
    async (req) => {
      const principal = principalOf(req);
      return ctx.workspaces.whoAmI(principal, await runWorkspaceOf(ctx, principal));
    },
  );
  app.get(
    '/v1/workspaces',
    {
      schema: {
        tags: ['workspaces'],
        summary: 'List workspaces the token can see',
        response: { 200: { type: 'array', items: workspaceSchema } },
      },
    },
    async (req) => ctx.workspaces.list(principalOf(req)),
  );
  app.post<{ Body: { name: string } }>(
    '/v1/workspaces',
    {
      schema: {
        tags: ['workspaces'],
        summary: 'Create a workspace (names are unique)',
        body: {
          type: 'object',
          required: ['name'],
          properties: { name: { type: 'string' } },
          additionalProperties: false,
        },
        response: { 201: workspaceSchema },
      },
    },
    async (req, reply) =>
      reply.status(201).send(await ctx.workspaces.create(principalOf(req), req.body.name)),
  );
  app.get<{ Params: { name: string }; Querystring: { createIfNotExist?: boolean } }>(
    '/v1/workspaces/by-name/:name',
    {
      schema: {
        tags: ['workspaces'],
        summary:
          "Get a workspace by name, optionally creating it (with the console's session cookie, createIfNotExist needs the CSRF header and the server's own origin, as a POST does)",
        querystring: { type: 'object', properties: { createIfNotExist: { type: 'boolean' } } },
        response: { 200: workspaceSchema },
      },
    },
    async (req) => {
      const principal = principalOf(req);
      const create = req.query.createIfNotExist === true;
      // A GET that may create: a cross-site page must not make a signed-in browser do it.
      if (create) checkCookieMayChange(ctx, req);
      return ctx.workspaces.getByName(principal, req.params.name, create);
    },
  );
  app.post<{ Params: { workspaceId: string }; Body: { subject?: string; ttlSeconds?: number } | undefined }>(
    '/v1/workspaces/:workspaceId/tokens',
    {
      schema: {
        tags: ['workspaces'],
        summary:
          "Issue a token that sees only this workspace (an admin API token only: not a task run's token or a console session). Without ttlSeconds it never expires; list and revoke tokens under /v1/admin/tokens. The subject may not start with console-session:, console-link: or task-run:",
        body: {
          type: 'object',
          properties: {
            subject: { type: 'string', maxLength: 200 },
            ttlSeconds: { type: 'integer', minimum: 1, maximum: MAX_TOKEN_TTL_SECONDS },
          },
          additionalProperties: false,
        },
        response: {
          201: { type: 'object', properties: { id: { type: 'string' }, token: { type: 'string' } } },
        },
      },
    },
    async (req, reply) => {
      const principal = principalOf(req);
      if (principal.kind !== 'admin') {
        throw new ApiError('forbidden', 'Only an admin token can issue workspace tokens.');
      }
      // A run's token or a console session must not turn into a credential that outlives it.
      await ctx.sessions.apiTokenOf(principal, 'issue workspace tokens');
      const subject = req.body?.subject;
      const reserved = RESERVED_SUBJECT_PREFIXES.find((p) => subject?.startsWith(p) === true);
      if (reserved !== undefined) {
        throw new ApiError(
          'invalid_request',
          `body/subject may not start with "${reserved}": the server gives that prefix to its own tokens (console sessions, sign-in links, task runs). Choose another subject.`,
          { subject },
        );
      }
      const ws = await ctx.workspaces.getById(principal, workspaceIdParam(req));
      const ttl = req.body?.ttlSeconds;
      const issued = await ctx.tokens.issueForWorkspace(
        ws.id,
        subject ?? `workspace:${ws.name}`,
        ttl === undefined ? undefined : ttl * 1000,
      );
      return reply.status(201).send(issued);
    },
  );
  app.get<{ Params: { workspaceId: string } }>(
    '/v1/workspaces/:workspaceId',
    {
      schema: { tags: ['workspaces'], summary: 'Get a workspace by id', response: { 200: workspaceSchema } },
    },
    async (req) => ctx.workspaces.getById(principalOf(req), workspaceIdParam(req)),
  );
}
