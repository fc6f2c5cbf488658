import type { FastifyInstance, FastifyRequest } from 'fastify';
import { tableToIPC, type Table } from 'apache-arrow';
import { MEDIA_TYPES } from '@quoll/client/wire';
import {
  decodeInferenceBody,
  encodeInferenceResult,
  formatOfMediaType,
  type ResultFormat,
} from '../../inference/index.js';
import { canSeeWorkspace } from '../../workspaces/index.js';
import { ApiError } from '../api-error.js';
import { negotiateFormat } from './accept-header.js';
import type { ServerContext } from '../server-context.js';
import { principalOf } from '../server-context.js';

/**
 * `POST /v1/workspaces/:workspaceId/pipelines/:name/infer`: the inference endpoint of a deployed
 * pipeline. Registered in its own plugin so that its bodies arrive as raw buffers (JSON is parsed
 * by the inference decoder, straight into tensors).
 */
export async function inferenceRoutes(app: FastifyInstance, ctx: ServerContext): Promise<void> {
  app.removeContentTypeParser(['application/json']);
  app.addContentTypeParser(
    [MEDIA_TYPES.json, MEDIA_TYPES.arrowFile, MEDIA_TYPES.arrowStream],
    { parseAs: 'buffer', bodyLimit: ctx.config.maxInferenceBytes },
    (_req, body, done) => done(null, body),
  );

  app.post<{ Params: { workspaceId: string; name: string } }>(
    '/v1/workspaces/:workspaceId/pipelines/:name/infer',
    {
      bodyLimit: ctx.config.maxInferenceBytes,
      schema: {
        tags: ['inference'],
        summary:
          'Run the deployed pipeline. Body: JSON records, Arrow IPC file or stream. Answers in the format Accept asks for (default: the request format).',
        consumes: [MEDIA_TYPES.json, MEDIA_TYPES.arrowFile, MEDIA_TYPES.arrowStream],
      },
    },
    async (req, reply) => {
      const now = ctx.now();
      const workspaceId = Number(req.params.workspaceId);
      const principal = principalOf(req);
      if (!canSeeWorkspace(principal, workspaceId)) {
        throw new ApiError('workspace_not_found', `No workspace with id ${req.params.workspaceId} exists.`);
      }
      const found = ctx.deployments.lookup(workspaceId, req.params.name);
      if (found.state !== 'serving') {
        // Slow path: say precisely why (unknown workspace/pipeline, not deployed, or not ready).
        await ctx.pipelines.get((await ctx.workspaces.getById(principal, workspaceId)).id, req.params.name);
        if (found.state === 'not_deployed') {
          throw new ApiError(
            'pipeline_not_deployed',
            `Pipeline "${req.params.name}" is not deployed; call deploy() first.`,
            {
              name: req.params.name,
            },
          );
        }
        throw new ApiError(
          'pipeline_not_ready',
          `Pipeline "${req.params.name}" is ${found.status}, not Running${found.details.length ? `: ${found.details.join('; ')}` : ''}.`,
          { status: found.status, details: found.details },
        );
      }
      const contentType = req.headers['content-type'] ?? '';
      const format = negotiate(req, contentType);
      const input = decodeInferenceBody(contentType, req.body as Buffer);
      const result = await found.deployment.infer(input, now);
      let answerType: string;
      let body: Uint8Array | string;
      let table: Table | null = null;
      if (format === 'json') {
        ({ contentType: answerType, body } = encodeInferenceResult(result, format));
      } else {
        // Build the Arrow result once: it is both the answer and the log rows.
        table = result.toArrowTable();
        answerType = format === 'arrow-file' ? MEDIA_TYPES.arrowFile : MEDIA_TYPES.arrowStream;
        body = tableToIPC(table, format === 'arrow-file' ? 'file' : 'stream');
      }
      if (ctx.config.inferenceLogs) {
        // Queued before the answer leaves, so a logs query after the answer sees the rows. The
        // append only enqueues (the disk write is the log writer's); it waits only when the
        // writer's queue is full, which slows callers instead of dropping rows.
        await ctx.inferenceLogs.append(found.pipelineId, table ?? result.toArrowTable());
      }
      return reply.header('content-type', answerType).send(body);
    },
  );
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
