import type { FastifyInstance } from 'fastify';
import { NO_PIPELINE } from '../../metrics/index.js';
import type { ServerContext } from '../server-context.js';

/**
 * Counts and times every inference answer of a route plugin (errors too), when metrics are on.
 * The pipeline label is set (`req.servedPipeline`) only once a serving pipeline is found, so
 * unknown names never become label values. Only POSTs are inferences: the Open Inference
 * plugin also answers GETs (health, metadata), which are not counted.
 */
export function countInferences(app: FastifyInstance, ctx: ServerContext): void {
  app.decorateRequest('servedPipeline', null);
  const metrics = ctx.config.metrics ? ctx.metrics : null;
  if (metrics === null) return;
  // A callback hook, not an async one: no promise per request on the hot path.
  app.addHook('onResponse', (req, reply, done) => {
    if (req.method === 'POST') {
      const served = req.servedPipeline;
      metrics.inferenceServed(
        served?.workspaceId ?? 0,
        served?.name ?? NO_PIPELINE,
        reply.statusCode,
        reply.elapsedTime / 1000,
      );
    }
    done();
  });
}
