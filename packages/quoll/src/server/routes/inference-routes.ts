import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { MEDIA_TYPES } from '@quoll/client/wire';
import {
  formatOfMediaType,
  quollBodyCodecs,
  UNCHECKED_BODY_DECODER,
  type EncodedInference,
  type RawInferenceBody,
  type ResultFormat,
} from '../../inference/index.js';
import { ApiError } from '../../errors/index.js';
import { negotiateFormat } from './accept-header.js';
import { countInferences } from './count-inferences.js';
import type { ServerContext } from '../server-context.js';
import { principalOf, workspaceIdParam } from '../server-context.js';
import { forwardingHook } from '../forward-request.js';
import { apiErrorHandler, privatePaths } from '../error-handler.js';

/**
 * `POST /v1/workspaces/:workspaceId/pipelines/:name/infer`: the inference endpoint of a deployed
 * pipeline. Registered in its own plugin so that its bodies arrive as raw buffers (JSON is parsed
 * by the inference decoder, straight into tensors).
 */
export async function inferenceRoutes(app: FastifyInstance, ctx: ServerContext): Promise<void> {
  // Only the types the endpoint takes have a parser: any other (Fastify's text/plain among them)
  // is refused 415 before its body is read, instead of being buffered up to the size cap first.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser(
    [MEDIA_TYPES.json, MEDIA_TYPES.arrowFile, MEDIA_TYPES.arrowStream],
    { parseAs: 'buffer', bodyLimit: ctx.config.maxInferenceBytes },
    (_req, body, done) => done(null, body),
  );
  const answered = countInferences(app, ctx, apiErrorHandler(privatePaths(ctx.config.home)));

  // QUOLL_BENCH_INPUT_CHECKS=off (benchmarks only): bodies decoded inline, unbudgeted.
  const checked = ctx.config.inputChecks;
  // Large JSON records are decoded by the model worker that runs them (no third thread).
  const decoder = ctx.decoder;
  const codecs = quollBodyCodecs(
    checked
      ? {
          decode: (contentType, body) => decoder.decodeForModelWorker(contentType, body),
          decodeInline: (contentType, body) => decoder.decodeInline(contentType, body),
        }
      : UNCHECKED_BODY_DECODER,
  );
  // On a cluster, a request for a pipeline this node does not serve goes, as it arrives, to a
  // node that does (before its body is read here).
  const forward = forwardingHook(ctx, (req) => ({
    workspaceId: workspaceIdParam(req),
    pipeline: (req.params as { name: string }).name,
  }));

  app.post<{ Params: { workspaceId: string; name: string } }>(
    '/v1/workspaces/:workspaceId/pipelines/:name/infer',
    {
      bodyLimit: ctx.config.maxInferenceBytes,
      ...(forward === undefined ? {} : { onRequest: forward }),
      // Reserve the body's memory before it is read (503 server_busy when the server is full).
      ...(checked ? { preParsing: ctx.bodyBudget.hook } : {}),
      config: { accepts: [MEDIA_TYPES.json, MEDIA_TYPES.arrowFile, MEDIA_TYPES.arrowStream] },
      schema: {
        tags: ['inference'],
        summary:
          'Run the deployed pipeline. Body: JSON records, Arrow IPC file or stream. Answers in the format Accept asks for (default: the request format).',
        consumes: [MEDIA_TYPES.json, MEDIA_TYPES.arrowFile, MEDIA_TYPES.arrowStream],
      },
    },
    async (req, reply) => {
      const contentType = req.headers['content-type'] ?? '';
      const format = negotiate(req, contentType);
      const answer = await ctx.inference.infer(
        principalOf(req),
        { workspaceId: workspaceIdParam(req), pipeline: req.params.name },
        codecs[format],
        rawBodyOf(req, contentType),
        (workspaceId) => (req.servedPipeline = { workspaceId, name: req.params.name }),
      );
      sendInferenceAnswer(reply, answer);
      answered(req, reply);
      return reply;
    },
  );
}

/** A request's body and headers as the inference codecs read them. */
export function rawBodyOf(req: FastifyRequest, contentType: string): RawInferenceBody {
  const headers = req.headers;
  return {
    contentType,
    body: (req.body as Buffer | undefined) ?? Buffer.alloc(0),
    header: (name) => {
      const value = headers[name];
      return Array.isArray(value) ? value[0] : value;
    },
  };
}

/**
 * Sends an encoded answer: its bytes as they are, or, for a large answer written in slices,
 * its parts one after another (as the socket takes them) with their total as Content-Length.
 */
export function sendInferenceAnswer(reply: FastifyReply, answer: EncodedInference): void {
  if (answer.headers) void reply.headers(answer.headers);
  void reply.header('content-type', answer.contentType);
  const body = answer.body;
  if (typeof body === 'string' || !Array.isArray(body)) {
    void reply.send(body);
    return;
  }
  const parts = body as readonly Uint8Array[];
  let length = 0;
  for (const part of parts) length += part.byteLength;
  void reply.header('content-length', length).send(Readable.from(parts, { objectMode: false }));
}

/** What the endpoint can answer, in the order a wildcard falls back to. */
const RESULT_FORMATS: readonly ResultFormat[] = ['json', 'arrow-file', 'arrow-stream'];

/**
 * Picks the response format from Accept (case-insensitive, q-values and order honoured); no
 * Accept or a wildcard answers in the request's own format.
 */
function negotiate(req: FastifyRequest, contentType: string): ResultFormat {
  const accept = req.headers.accept;
  const fromRequest = formatOfMediaType(contentType) ?? 'json';
  const format = negotiateFormat(accept, RESULT_FORMATS, formatOfMediaType, fromRequest);
  if (format !== null) return format;
  throw new ApiError(
    'not_acceptable',
    `Accept "${accept ?? ''}" names no format this endpoint produces; ask for ${MEDIA_TYPES.json}, ${MEDIA_TYPES.arrowFile} or ${MEDIA_TYPES.arrowStream}.`,
  );
}
