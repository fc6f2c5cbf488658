import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { NO_PIPELINE } from '../../metrics/index.js';
import type { SyncErrorHandler } from '../error-handler.js';
import type { ServerContext } from '../server-context.js';

/** Counts and times one answered inference request; called right after its `reply.send()`. */
export type InferenceAnswered = (req: FastifyRequest, reply: FastifyReply) => void;

const notCounted: InferenceAnswered = () => undefined;

/**
 * Counts and times every inference answer of a route plugin (errors too), when metrics are on.
 * Returns what the plugin's inference handlers call right after they send their answer; every
 * error, thrown before the handler (401, 413, 415, 503 `server_busy`) or inside it, is answered
 * by the plugin's error handler (`onError`, installed here), which then counts it too. So each
 * answer is counted exactly once, with its status and its latency from the time Fastify routed
 * the request (`reply.elapsedTime`: Fastify reads the clock there for every request, before the
 * `onRequest` hooks) to the answer handed to Node. Quoll's own start time (a `performance.now()`
 * kept on each request) cost the metrics server about 2 % of its JSON batch-1 throughput
 * (docs/benchmarks.md, "Metrics on vs off", the metrics lane of 5 December). An answer a cluster node
 * forwards (`forward-request.ts`) is counted by the node that served it.
 *
 * No `onResponse` hook: with one, Fastify runs its hook runner on every response of the scope,
 * and a probe of the metrics server without it answered 1.013 as many JSON batch-1 requests as
 * a `--no-metrics` one, against 0.965 with it (one run each; docs/benchmarks.md, "Metrics on vs
 * off").
 *
 * The pipeline label is set (`req.servedPipeline`) only once a serving pipeline is found, so
 * unknown names never become label values. Only POSTs are inferences: the Open Inference
 * plugin also answers GETs (health, metadata), whose errors the same error handler answers
 * and which are not counted.
 */
export function countInferences(
  app: FastifyInstance,
  ctx: ServerContext,
  onError: SyncErrorHandler,
): InferenceAnswered {
  app.decorateRequest('servedPipeline', null);
  const metrics = ctx.config.metrics ? ctx.metrics : null;
  if (metrics === null) {
    app.setErrorHandler(onError);
    return notCounted;
  }
  const answered: InferenceAnswered = (req, reply) => {
    if (req.method !== 'POST') return;
    const served = req.servedPipeline;
    metrics.inferenceServed(
      served?.workspaceId ?? 0,
      served?.name ?? NO_PIPELINE,
      reply.statusCode,
      reply.elapsedTime / 1000,
    );
  };
  app.setErrorHandler((err, req, reply) => {
    onError(err, req, reply);
    answered(req, reply);
  });
  return answered;
}
