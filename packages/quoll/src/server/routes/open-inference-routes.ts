import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ERROR_CODES, MEDIA_TYPES } from '@quoll/client/wire';
import { openInferenceCodec, openInferenceMetadata } from '../../inference/index.js';
import { countInferences } from './count-inferences.js';
import type { PipelineAddress } from '../../serving/index.js';
import { logAnsweredError, privatePaths, settleUnreadBody, toApiError } from '../error-handler.js';
import { safeDetails, safeMessage } from '../../errors/index.js';
import type { ServerContext } from '../server-context.js';
import { principalOf } from '../server-context.js';
import { rawBodyOf, sendInferenceAnswer } from './inference-routes.js';
import { forwardingHook } from '../forward-request.js';
import { schemaHealth } from '../schema-health.js';

/** Paths of the protocol that answer without a token (health checks, as `/v1/health`). */
export const OPEN_INFERENCE_PUBLIC_PATHS: readonly string[] = ['/v2/health/live', '/v2/health/ready'];

/** Extensions of the protocol this server implements (`GET /v2`). */
const EXTENSIONS = ['binary_tensor_data'];

type ModelParams = { name: string; workspace?: string };

/**
 * The Open Inference Protocol v2 (KServe / Triton HTTP): `GET /v2/health/live`,
 * `GET /v2/health/ready`, `GET /v2`, and per pipeline `GET /v2/models/{name}` (metadata),
 * `GET /v2/models/{name}/ready` and `POST /v2/models/{name}/infer` (JSON tensors and the
 * binary-tensor extension). Pipelines are those of the token's workspace (admin tokens: the
 * default workspace), or of `/v2/workspaces/{workspace}/models/{name}`. Inference goes through
 * the same use case as `/v1`: bearer auth, checks and logging are the same.
 *
 * Errors follow the protocol's body, `{"error": "<message>"}`, with the catalogue `code` (and
 * `details`) beside it, so Triton and KServe clients print the message and Quoll clients keep
 * the code.
 */
export async function openInferenceRoutes(
  app: FastifyInstance,
  ctx: ServerContext,
  started: () => boolean,
): Promise<void> {
  // Messages and details are cleaned as on /v1: no server paths, no stack, at most 1 KiB.
  const paths = privatePaths(ctx.config.home);
  const answered = countInferences(app, ctx, (err, req, reply) => {
    const apiError = toApiError(err, req);
    const status = ERROR_CODES[apiError.code].status;
    logAnsweredError(req.log, apiError, err);
    const body: Record<string, unknown> = {
      error: safeMessage(apiError.message, paths),
      code: apiError.code,
    };
    const details = safeDetails(apiError.details, paths);
    if (details !== undefined) body.details = details;
    settleUnreadBody(req, reply, apiError.code);
    void reply.status(status).send(body);
  });
  // Inference bodies are read by the codec: JSON, or JSON plus binary tensors under any
  // content type (Triton's client sends application/octet-stream, or none).
  // The types clients send are named as well as the catch-all: Fastify caches the parser of a
  // named type, but parses the Content-Type header again on every request that falls to '*'.
  app.removeAllContentTypeParsers();
  const asBuffer = { parseAs: 'buffer' as const, bodyLimit: ctx.config.maxInferenceBytes };
  const keepBuffer = (_req: FastifyRequest, body: Buffer, done: (err: null, body: Buffer) => void): void =>
    done(null, body);
  app.addContentTypeParser([MEDIA_TYPES.json, MEDIA_TYPES.octetStream], asBuffer, keepBuffer);
  app.addContentTypeParser('*', asBuffer, keepBuffer);

  app.get(
    '/v2/health/live',
    {
      schema: {
        tags: ['open inference'],
        summary: 'Open Inference Protocol: the server is live (no token needed)',
        security: [],
      },
    },
    async () => ({ live: true }),
  );
  app.get(
    '/v2/health/ready',
    {
      schema: {
        tags: ['open inference'],
        summary:
          'Open Inference Protocol: the server is ready (started, database reachable); 503 otherwise (no token needed). While a node of a newer release has migrated the schema past this node, it stays ready and the answer adds schema (status schema_ahead, code and database versions)',
        security: [],
      },
    },
    async (_req, reply) => {
      const ready = started() && (await ctx.databaseHealth()).status === 'ok';
      // A node whose schema a newer release migrated stays ready (the release rule keeps it
      // able to serve; a balancer dropping every old node at once would not roll), and says so.
      const schema = schemaHealth(ctx, false);
      return reply
        .status(ready ? 200 : 503)
        .send(schema.status === 'current' ? { ready } : { ready, schema });
    },
  );
  app.get(
    '/v2',
    { schema: { tags: ['open inference'], summary: 'Open Inference Protocol: server metadata' } },
    async () => ({ name: 'quoll', version: '0.1.0', extensions: EXTENSIONS }),
  );

  // On a cluster, the requests for a pipeline this node does not serve go to a node that does.
  const forward = forwardingHook(ctx, (req) => addressOf(req as FastifyRequest<{ Params: ModelParams }>));
  const forwarding = forward === undefined ? {} : { onRequest: forward };
  // Bodies are read in the decode pool (large ones off the HTTP thread, under its deadline),
  // and reserve their memory first, counted as JSON whatever their Content-Type says.
  const codec = openInferenceCodec(ctx.decoder);
  const jsonCost = ctx.bodyBudget.costOf(MEDIA_TYPES.json);
  const reserveBody = ctx.bodyBudget.hookWith(() => jsonCost);
  for (const prefix of ['/v2/models/:name', '/v2/workspaces/:workspace/models/:name']) {
    const where = prefix.includes(':workspace') ? 'the named workspace' : "the token's workspace";
    app.get<{ Params: ModelParams }>(
      prefix,
      {
        ...forwarding,
        schema: {
          tags: ['open inference'],
          summary: `Open Inference Protocol: metadata of a deployed pipeline of ${where} (inputs of its first step, outputs of its last)`,
        },
      },
      async (req) => openInferenceMetadata(await ctx.inference.describe(principalOf(req), addressOf(req))),
    );
    app.get<{ Params: ModelParams }>(
      `${prefix}/ready`,
      {
        ...forwarding,
        schema: {
          tags: ['open inference'],
          summary: `Open Inference Protocol: 200 when the pipeline of ${where} serves; else the error says why`,
        },
      },
      async (req) => {
        await ctx.inference.describe(principalOf(req), addressOf(req));
        return { name: req.params.name, ready: true };
      },
    );
    app.post<{ Params: ModelParams }>(
      `${prefix}/infer`,
      {
        bodyLimit: ctx.config.maxInferenceBytes,
        ...forwarding,
        preParsing: reserveBody,
        schema: {
          tags: ['open inference'],
          summary: `Open Inference Protocol: run a deployed pipeline of ${where}. Body: {"inputs": [{"name", "shape", "datatype", "data"}]}, or with Inference-Header-Content-Length the binary-tensor extension. Logged like every inference.`,
        },
      },
      // The use case called here, not through an async helper (one more promise and await per
      // request, which Quoll's own endpoint does without).
      async (req, reply) => {
        const answer = await ctx.inference.infer(
          principalOf(req),
          addressOf(req),
          codec,
          rawBodyOf(req, req.headers['content-type'] ?? ''),
          (workspaceId) => (req.servedPipeline = { workspaceId, name: req.params.name }),
        );
        sendInferenceAnswer(reply, answer);
        answered(req, reply);
        return reply;
      },
    );
  }
}

function addressOf(req: FastifyRequest<{ Params: ModelParams }>): PipelineAddress {
  return { workspaceName: req.params.workspace ?? null, pipeline: req.params.name };
}
