import type { FastifyInstance } from 'fastify';
import type { TokenInfo } from '../../auth/index.js';
import { ApiError } from '../../errors/index.js';
import type { ServerContext } from '../server-context.js';
import { principalOf } from '../server-context.js';

const tokenInfoSchema = {
  type: 'object',
  required: ['id', 'subject', 'kind', 'workspaceId', 'createdAt', 'expiresAt'],
  properties: {
    id: { type: 'string' },
    subject: { type: 'string' },
    kind: { type: 'string', enum: ['admin', 'workspace'] },
    workspaceId: { type: ['integer', 'null'] },
    createdAt: { type: 'string' },
    expiresAt: { type: ['string', 'null'] },
  },
} as const;

/**
 * `/v1/admin/tokens`: the admin's list of live API tokens (never their secrets) and their
 * revocation, which also ends the console sessions made from a token.
 */
export function tokenRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.get(
    '/v1/admin/tokens',
    {
      schema: {
        tags: ['workspaces'],
        summary:
          "Live API tokens, newest first: admin and workspace tokens and running tasks' tokens (not console sessions: /v1/admin/sessions), without their secrets (admin token only)",
        response: { 200: { type: 'array', items: tokenInfoSchema } },
      },
    },
    async (req): Promise<TokenInfo[]> => {
      requireAdmin(principalOf(req).kind);
      return ctx.tokens.list();
    },
  );

  app.delete<{ Params: { id: string } }>(
    '/v1/admin/tokens/:id',
    {
      schema: {
        tags: ['workspaces'],
        summary:
          'Revoke an API token: it stops working at once, and so do the console sessions made from it (admin token only). token_not_found when no live API token has this id',
        params: { type: 'object', required: ['id'], properties: { id: { type: 'string' } } },
      },
    },
    async (req, reply) => {
      requireAdmin(principalOf(req).kind);
      await ctx.tokens.revokeApiToken(req.params.id);
      return reply.code(204).send();
    },
  );
}

function requireAdmin(kind: 'admin' | 'workspace'): void {
  if (kind !== 'admin') {
    throw new ApiError('forbidden', 'Listing and revoking API tokens needs an admin token.');
  }
}
