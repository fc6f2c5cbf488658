import type { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import type { ServerContext } from '../server-context.js';
import { workspaceIdOf } from '../server-context.js';
import { modelVersionSchema } from './schemas.js';

/** Model upload, listing and configuration under `/v1/workspaces/:workspaceId/models`. */
export async function modelRoutes(app: FastifyInstance, ctx: ServerContext): Promise<void> {
  // Uploads are streamed: the parser hands the raw request stream to the route untouched.
  app.addContentTypeParser('application/octet-stream', (_req, payload, done) => done(null, payload));

  app.post<{
    Params: { workspaceId: string };
    Querystring: { name: string; fileName?: string; tensorFields?: string; batchConfig?: 'single' };
  }>(
    '/v1/workspaces/:workspaceId/models',
    {
      schema: {
        tags: ['models'],
        summary:
          'Upload an ONNX model (body: the file bytes, application/octet-stream); same name again = new version',
        querystring: {
          type: 'object',
          required: ['name'],
          properties: {
            name: { type: 'string' },
            fileName: { type: 'string' },
            tensorFields: {
              type: 'string',
              description: 'comma-separated input column names, one per model input',
            },
            batchConfig: { type: 'string', enum: ['single'] },
          },
        },
        response: { 201: modelVersionSchema },
      },
    },
    async (req, reply) => {
      const ws = await workspaceIdOf(ctx, req);
      const { tensorFields, batchConfig } = req.query;
      const model = await ctx.models.upload(ws, req.query.name, req.query.fileName, req.body as Readable, {
        ...(tensorFields !== undefined ? { tensorFields: tensorFields.split(',').map((f) => f.trim()) } : {}),
        ...(batchConfig !== undefined ? { batchConfig } : {}),
      });
      return reply.status(201).send(model);
    },
  );

  app.get<{ Params: { workspaceId: string } }>(
    '/v1/workspaces/:workspaceId/models',
    {
      schema: {
        tags: ['models'],
        summary: 'List model versions, newest first',
        response: { 200: { type: 'array', items: modelVersionSchema } },
      },
    },
    async (req) => ctx.models.list(await workspaceIdOf(ctx, req)),
  );

  app.get<{ Params: { workspaceId: string; name: string }; Querystring: { version?: string } }>(
    '/v1/workspaces/:workspaceId/models/:name',
    {
      schema: {
        tags: ['models'],
        summary: 'Get the newest version of a model, or the given version',
        querystring: { type: 'object', properties: { version: { type: 'string' } } },
        response: { 200: modelVersionSchema },
      },
    },
    async (req) => ctx.models.get(await workspaceIdOf(ctx, req), req.params.name, req.query.version),
  );

  app.patch<{
    Params: { workspaceId: string; name: string; version: string };
    Body: { tensorFields?: string[] | null; batchConfig?: 'single' | null };
  }>(
    '/v1/workspaces/:workspaceId/models/:name/versions/:version/config',
    {
      schema: {
        tags: ['models'],
        summary: 'Configure a model version (tensorFields, batchConfig)',
        body: {
          type: 'object',
          properties: { tensorFields: {}, batchConfig: {} },
          additionalProperties: false,
        },
        response: { 200: modelVersionSchema },
      },
    },
    async (req) =>
      ctx.models.configure(await workspaceIdOf(ctx, req), req.params.name, req.params.version, req.body),
  );
}
