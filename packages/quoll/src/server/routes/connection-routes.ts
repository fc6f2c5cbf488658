import type { FastifyInstance } from 'fastify';
import type { ConnectionAuditEntryDto, ConnectionDto, ConnectionWithDetailsDto } from '@quoll/client/wire';
import type { ConnectionScope } from '../../connections/index.js';
import type { Principal } from '../../auth/index.js';
import { ApiError } from '../../errors/index.js';
import type { ServerContext } from '../server-context.js';
import { principalOf, workspaceIdOf } from '../server-context.js';
import { checkCookieMayChange } from '../authenticate-request.js';
import { connectionAuditEntrySchema, connectionSchema, connectionWithDetailsSchema } from './schemas.js';

/** Largest body `POST /v1/connections` takes: the details cap (64 KiB of JSON) plus room for name and type. */
const CREATE_BODY_LIMIT = 1024 * 1024;
/** Audit entries returned when no `limit` is given. */
const DEFAULT_AUDIT_LIMIT = 100;
const MAX_AUDIT_LIMIT = 10_000;

const nameParams = {
  type: 'object',
  required: ['name'],
  properties: { name: { type: 'string' } },
} as const;

const workspaceNameParams = {
  type: 'object',
  required: ['workspaceId', 'name'],
  properties: { workspaceId: { type: 'string' }, name: { type: 'string' } },
} as const;

/** The connections service's view of who is asking: an admin sees all, a workspace token only its own. */
export function scopeOf(principal: Principal): ConnectionScope {
  return principal.kind === 'admin'
    ? { kind: 'admin' }
    : { kind: 'workspace', workspaceId: principal.workspaceId };
}

/**
 * `/v1/connections`, `/v1/workspaces/:workspaceId/connections` and `/v1/admin/audit`.
 * Only `GET /v1/connections/:name/details` answers details, and each such read is audited.
 */
export function connectionRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.post<{ Body: { name: unknown; type: unknown; details: unknown } }>(
    '/v1/connections',
    {
      bodyLimit: CREATE_BODY_LIMIT,
      schema: {
        tags: ['connections'],
        summary:
          'Create a connection (admin only; names are unique per instance). Attach it to workspaces with PUT /v1/workspaces/:workspaceId/connections/:name',
        body: {
          type: 'object',
          required: ['name', 'type', 'details'],
          properties: {
            name: { type: 'string' },
            type: { type: 'string', description: 'Free string, e.g. HTTPFILE, HTTP, BIGQUERY, ODBC, KAFKA' },
            // Left untyped here so the service answers the precise `invalid_connection` error.
            details: { description: 'Any JSON object (at most 64 KiB); stored encrypted, never listed' },
          },
          additionalProperties: false,
        },
        response: { 201: connectionSchema },
      },
    },
    async (req, reply) => {
      const created = await ctx.connections.create(scopeOf(principalOf(req)), req.body);
      return reply.status(201).send(created);
    },
  );

  app.get(
    '/v1/connections',
    {
      schema: {
        tags: ['connections'],
        summary: 'List the connections the token can see (details masked)',
        response: { 200: { type: 'array', items: connectionSchema } },
      },
    },
    async (req): Promise<ConnectionDto[]> => ctx.connections.list(scopeOf(principalOf(req))),
  );

  app.get<{ Params: { name: string } }>(
    '/v1/connections/:name',
    {
      schema: {
        tags: ['connections'],
        summary: 'Get a connection by name (details masked)',
        params: nameParams,
        response: { 200: connectionSchema },
      },
    },
    async (req): Promise<ConnectionDto> =>
      ctx.connections.get(scopeOf(principalOf(req)), { name: req.params.name }),
  );

  app.get<{ Params: { name: string } }>(
    '/v1/connections/:name/details',
    {
      schema: {
        tags: ['connections'],
        summary:
          "Get a connection with its unmasked details; the read is recorded in the audit trail (with the console's session cookie it needs the CSRF header and the server's own origin, as a POST does)",
        params: nameParams,
        response: { 200: connectionWithDetailsSchema },
      },
    },
    async (req, reply): Promise<ConnectionWithDetailsDto> => {
      const principal = principalOf(req);
      // The read writes an audit row (and reveals secrets): a cross-site page must not cause it.
      checkCookieMayChange(ctx, req);
      const { connection, details } = await ctx.connections.details(
        scopeOf(principal),
        { name: req.params.name },
        principal.subject,
      );
      // A task run's token: that run's captured output hides these values from now on.
      ctx.runSecrets.recordRead(principal.subject, details);
      // Details must not sit in any cache between the server and the caller.
      void reply.header('cache-control', 'no-store');
      return { ...connection, details };
    },
  );

  app.delete<{ Params: { name: string } }>(
    '/v1/connections/:name',
    {
      schema: {
        tags: ['connections'],
        summary:
          'Delete a connection; it is detached from every workspace. A workspace token may delete only a connection attached to its workspace alone (else 403 forbidden)',
        params: nameParams,
        response: { 204: { type: 'null' } },
      },
    },
    async (req, reply) => {
      await ctx.connections.delete(scopeOf(principalOf(req)), { name: req.params.name });
      return reply.status(204).send();
    },
  );

  app.get<{ Params: { workspaceId: string } }>(
    '/v1/workspaces/:workspaceId/connections',
    {
      schema: {
        tags: ['connections'],
        summary: 'List the connections attached to a workspace (details masked)',
        response: { 200: { type: 'array', items: connectionSchema } },
      },
    },
    async (req): Promise<ConnectionDto[]> => {
      const workspaceId = await workspaceIdOf(ctx, req);
      return ctx.connections.list(scopeOf(principalOf(req)), { workspaceId });
    },
  );

  app.put<{ Params: { workspaceId: string; name: string } }>(
    '/v1/workspaces/:workspaceId/connections/:name',
    {
      schema: {
        tags: ['connections'],
        summary: 'Attach a connection to a workspace (attaching twice is a no-op)',
        params: workspaceNameParams,
        response: { 200: connectionSchema },
      },
    },
    async (req): Promise<ConnectionDto> => {
      const workspaceId = await workspaceIdOf(ctx, req);
      return ctx.connections.attach(scopeOf(principalOf(req)), { name: req.params.name }, workspaceId);
    },
  );

  app.delete<{ Params: { workspaceId: string; name: string } }>(
    '/v1/workspaces/:workspaceId/connections/:name',
    {
      schema: {
        tags: ['connections'],
        summary: 'Detach a connection from a workspace; the connection itself remains',
        params: workspaceNameParams,
        response: { 204: { type: 'null' } },
      },
    },
    async (req, reply) => {
      const workspaceId = await workspaceIdOf(ctx, req);
      await ctx.connections.detach(scopeOf(principalOf(req)), { name: req.params.name }, workspaceId);
      return reply.status(204).send();
    },
  );

  app.get<{ Querystring: { limit?: number } }>(
    '/v1/admin/audit',
    {
      schema: {
        tags: ['admin'],
        summary: 'The audit trail of unmasked connection reads, newest first (admin only)',
        querystring: {
          type: 'object',
          properties: {
            limit: { type: 'integer', minimum: 1, maximum: MAX_AUDIT_LIMIT, default: DEFAULT_AUDIT_LIMIT },
          },
        },
        response: { 200: { type: 'array', items: connectionAuditEntrySchema } },
      },
    },
    async (req): Promise<ConnectionAuditEntryDto[]> => {
      if (principalOf(req).kind !== 'admin') {
        throw new ApiError(
          'forbidden',
          'Only an admin token can read the audit trail; use the admin token from credentials.json.',
        );
      }
      const entries = await ctx.connectionStore.listAudit({ limit: req.query.limit ?? DEFAULT_AUDIT_LIMIT });
      return entries.map((e) => ({
        id: e.id,
        subject: e.subject,
        connectionId: e.connectionId,
        connectionName: e.connectionName,
        action: e.action,
        at: e.at,
      }));
    },
  );
}
