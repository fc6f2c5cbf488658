import type { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { ApiError } from '../../errors/index.js';
import { unsupportedMediaType } from '../error-handler.js';
import {
  MULTIPART_SLACK_BYTES,
  acceptMultipart,
  dispositionFileName,
  readMultipartUpload,
  textField,
  type MultipartUpload,
} from '../multipart-upload.js';
import type { ServerContext } from '../server-context.js';
import { principalOf, workspaceIdOf } from '../server-context.js';
import { WORKSPACE_ID_QUERY, workspacesInScope } from './workspace-scope.js';
import { modelVersionSchema } from './schemas.js';

/** Model upload, listing and configuration under `/v1/workspaces/:workspaceId/models`. */
export async function modelRoutes(app: FastifyInstance, ctx: ServerContext): Promise<void> {
  // Uploads are streamed: the parser hands the raw request stream to the route untouched.
  app.addContentTypeParser('application/octet-stream', (_req, payload, done) => done(null, payload));
  // Or a multipart form with a `file` part, as Wallaroo's API clients send it.
  await acceptMultipart(app);

  app.post<{
    Params: { workspaceId: string };
    Querystring: { name?: string; fileName?: string; tensorFields?: string; batchConfig?: 'single' };
  }>(
    '/v1/workspaces/:workspaceId/models',
    {
      // The file's cap plus room for a multipart form's boundaries and fields.
      config: {
        accepts: ['application/octet-stream', 'multipart/form-data'],
        maxBodyBytes: ctx.models.maxUploadBytes + MULTIPART_SLACK_BYTES,
      },
      schema: {
        tags: ['models'],
        summary: 'Upload an ONNX model; the same name again makes a new version',
        description:
          'The body is the model file (application/octet-stream), or a multipart/form-data form with the file in a part named "file" and the parameters as fields or in a JSON "metadata" part (e.g. {"name": "m"}). Query parameters win over form fields. The file name defaults to the form part\'s file name, then to the Content-Disposition filename, then to <name>.onnx.',
        querystring: {
          type: 'object',
          properties: {
            name: { type: 'string', description: 'model name (or a "name" form field)' },
            fileName: { type: 'string', description: 'file name to record' },
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
      let form: MultipartUpload | null = null;
      try {
        let body = req.body as Readable;
        let { name, fileName, tensorFields, batchConfig } = req.query;
        fileName ??= dispositionFileName(req.headers['content-disposition']);
        if (req.isMultipart()) {
          form = await readMultipartUpload(req, ctx.blobs, ctx.models.maxUploadBytes, 'model file');
          name ??= textField(form.fields, 'name', 'model_name');
          fileName ??= form.fileName ?? textField(form.fields, 'fileName', 'file_name');
          tensorFields ??= textField(form.fields, 'tensorFields', 'tensor_fields');
          const batch = textField(form.fields, 'batchConfig', 'batch_config');
          if (batchConfig === undefined && batch === 'single') batchConfig = batch;
          body = form.open();
        } else if (typeof (body as Partial<Readable> | undefined)?.pipe !== 'function') {
          throw unsupportedMediaType(req);
        }
        if (name === undefined) {
          throw new ApiError(
            'invalid_name',
            'The model needs a name: give ?name=… (or, in a multipart form, a "name" field or metadata {"name": …}).',
          );
        }
        const model = await ctx.models.upload(ws, name, fileName, body, {
          ...(tensorFields !== undefined
            ? { tensorFields: tensorFields.split(',').map((f) => f.trim()) }
            : {}),
          ...(batchConfig !== undefined ? { batchConfig } : {}),
        });
        return await reply.status(201).send(model);
      } finally {
        await form?.discard();
      }
    },
  );

  app.get<{ Querystring: { name?: string; workspaceId?: string; workspaceName?: string } }>(
    '/v1/models',
    {
      schema: {
        tags: ['models'],
        summary:
          'List model versions, newest first, across the workspaces the token can see (or one workspace)',
        querystring: {
          type: 'object',
          properties: {
            name: { type: 'string', description: "only this model's versions" },
            workspaceId: WORKSPACE_ID_QUERY,
            workspaceName: { type: 'string', description: 'only this workspace' },
          },
          additionalProperties: false,
        },
        response: { 200: { type: 'array', items: modelVersionSchema } },
      },
    },
    async (req) => {
      const scope = await workspacesInScope(ctx, principalOf(req), req.query);
      return ctx.models.listIn(
        [...scope.keys()],
        req.query.name === undefined ? {} : { name: req.query.name },
      );
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
