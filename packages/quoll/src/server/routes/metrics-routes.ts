import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { MetricsSample } from '../../metrics/index.js';
import { canSeeWorkspace } from '../../workspaces/index.js';
import { ApiError } from '../../errors/index.js';
import type { ServerContext } from '../server-context.js';
import { principalOf } from '../server-context.js';

/** The path Prometheus scrapes. */
export const METRICS_PATH = '/metrics';

/** The body of `GET /v1/metrics/window`. */
export interface MetricsWindowDto {
  /** Seconds between samples. */
  intervalSeconds: number;
  /** Oldest first; each pipeline point only for pipelines the caller may see. */
  samples: MetricsSample[];
}

/**
 * `GET /metrics` (Prometheus text; an admin token unless the server runs with
 * `--metrics-public`) and `GET /v1/metrics/window` (the console's recent history of the same
 * numbers, scoped to the caller's workspaces).
 */
export function metricsRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.get(
    METRICS_PATH,
    {
      schema: {
        tags: ['metrics'],
        summary:
          'Prometheus metrics in the text format: inference requests, latency and rows per pipeline, queue depth, batch sizes, inference-log store, task runs by status, scheduler lag, process. Needs an admin token unless the server runs with --metrics-public.',
      },
    },
    async (req: FastifyRequest, reply) => {
      if (!ctx.config.metrics) {
        throw new ApiError('route_not_found', 'This server keeps no metrics (it runs with --no-metrics).');
      }
      if (!ctx.config.metricsPublic && principalOf(req).kind !== 'admin') {
        throw new ApiError(
          'forbidden',
          'GET /metrics needs an admin token (it shows every workspace); or start the server with --metrics-public.',
        );
      }
      const text = await ctx.metrics.render();
      return reply.header('content-type', ctx.metrics.contentType).send(text);
    },
  );

  app.get(
    '/v1/metrics/window',
    {
      schema: {
        tags: ['metrics'],
        summary:
          'The last minutes of the metrics as JSON samples (requests/s, rows/s, p50/p99 latency per pipeline, running task runs), for the console; pipelines of workspaces the token sees only.',
      },
    },
    async (req: FastifyRequest): Promise<MetricsWindowDto> => {
      const principal = principalOf(req);
      const samples = ctx.metricsWindow.samples().map((s) => ({
        ...s,
        pipelines: s.pipelines.filter((p) => canSeeWorkspace(principal, p.workspaceId)),
        runningRuns: principal.kind === 'admin' ? s.runningRuns : 0,
      }));
      return { intervalSeconds: ctx.metricsWindow.intervalMs / 1000, samples };
    },
  );
}
