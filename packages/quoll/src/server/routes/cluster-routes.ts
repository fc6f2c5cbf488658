import type { FastifyInstance } from 'fastify';
import type { NodeDto } from '@quoll/client/wire';
import { ApiError } from '../../errors/index.js';
import type { ServerContext } from '../server-context.js';
import { principalOf } from '../server-context.js';

const nodeSchema = {
  type: 'object',
  required: ['id', 'url', 'roles', 'status', 'startedAt', 'lastSeenAt'],
  properties: {
    id: { type: 'string' },
    url: { type: 'string' },
    roles: { type: 'array', items: { type: 'string', enum: ['api', 'tasks', 'inference'] } },
    status: { type: 'string', enum: ['up', 'lost', 'stopped'] },
    startedAt: { type: 'string' },
    lastSeenAt: { type: 'string' },
  },
} as const;

/** `GET /v1/admin/nodes`: the nodes of the instance and whether each is alive. */
export function clusterRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.get(
    '/v1/admin/nodes',
    {
      schema: {
        tags: ['admin'],
        summary:
          'The nodes of the instance (admin only): id, URL, roles, and status up (heartbeats arrive), lost (they stopped) or stopped (a clean shutdown)',
        response: { 200: { type: 'array', items: nodeSchema } },
      },
    },
    async (req): Promise<NodeDto[]> => {
      if (principalOf(req).kind !== 'admin') {
        throw new ApiError(
          'forbidden',
          'Only an admin token can list the nodes; use the admin token from credentials.json.',
        );
      }
      return (await ctx.nodes.listNodes()).map((n) => ({
        id: n.id,
        url: n.url,
        roles: n.roles,
        status: n.status,
        startedAt: n.startedAt,
        lastSeenAt: n.lastSeenAt,
      }));
    },
  );
}
