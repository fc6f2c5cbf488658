import type { IncomingMessage, ServerResponse } from 'node:http';
import { ERROR_CODES } from '@quoll/client/wire';
import { ApiError, safeDetails, safeMessage } from '../errors/index.js';
import { authenticateRequest } from './authenticate-request.js';
import { errorBody, toApiError } from './error-handler.js';
import { METRICS_PATH } from './routes/metrics-routes.js';
import type { ServerContext } from './server-context.js';

/** Answers one request and says so (true), or leaves it to Fastify (false). */
export type RawRequestHandler = (req: IncomingMessage, res: ServerResponse) => boolean;

/** What {@link metricsScrape} needs beside the server context. */
export interface MetricsScrapeOptions {
  /** Resolves when the server may authenticate requests; null once it may. */
  ready: () => Promise<void> | null;
  /** Folders that error messages never show (as in the Fastify error handler). */
  privatePaths: readonly string[];
  /** Where an error answered with a 5xx status is logged (`apiError`: what it was answered as). */
  logError: (err: unknown, apiError: ApiError) => void;
}

/**
 * `GET /metrics` answered by Node's HTTP server before Fastify sees the request (the server
 * factory of {@link createApp} calls this first); every other request, `HEAD /metrics` and
 * `GET /metrics` on a `--no-metrics` server (`route_not_found`) go to Fastify as before.
 *
 * Why outside Fastify: a scrape routed by Fastify ran its shared request code (the router,
 * the hook runners, `reply.send`, the `onResponse` path) with the root scope's request and
 * reply objects, whose shapes differ from those of the inference plugin's scope. V8 then threw
 * away the inference path's optimised code at the first scrape (`--trace-deopt`: about 30
 * functions, "wrong map") and rebuilt it for both shapes, and a server scraped once a second
 * spent about 5 % more CPU on each JSON batch-1 request than the same server unscraped, with
 * or without metrics (docs/benchmarks.md, "Metrics on vs off"). Answered here, a scrape touches
 * none of Fastify's code. The rules are those of the Fastify route: an admin token or the
 * console's session of an admin (no token with `--metrics-public`), errors as
 * `{ error: { code, message } }` from the catalogue.
 */
export function metricsScrape(ctx: ServerContext, options: MetricsScrapeOptions): RawRequestHandler {
  const answer = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    try {
      if (!ctx.config.metricsPublic) {
        const ready = options.ready();
        if (ready !== null) await ready;
        const principal = await authenticateRequest(ctx, { headers: req.headers, method: 'GET' });
        if (principal.kind !== 'admin') {
          throw new ApiError(
            'forbidden',
            'GET /metrics needs an admin token (it shows every workspace); or start the server with --metrics-public.',
          );
        }
      }
      const text = await ctx.metrics.render();
      answerLikeFastify(res, 200, ctx.metrics.contentType, text);
    } catch (err) {
      const apiError = toApiError(err);
      const status = ERROR_CODES[apiError.code].status;
      if (status >= 500) options.logError(err, apiError);
      const body = JSON.stringify(
        errorBody(
          apiError.code,
          safeMessage(apiError.message, options.privatePaths),
          safeDetails(apiError.details, options.privatePaths),
        ),
      );
      answerLikeFastify(res, status, 'application/json; charset=utf-8', body);
    }
  };
  return (req, res) => {
    if (!ctx.config.metrics || req.method !== 'GET') return false;
    const url = req.url ?? '';
    if (url !== METRICS_PATH && !url.startsWith(`${METRICS_PATH}?`)) return false;
    // Read the request as Fastify reads an inference body (a 'data' listener, which also makes
    // it flow): an inference request reaches Node's `resOnFinish` and `clearIncoming` with a
    // listener added (an own `_eventsCount`), consumed and ended; a scrape's request, with none
    // of that, came there in a hidden class of its own and down branches the inference path never
    // takes (`_dump`), and de-optimised them and `parserOnMessageComplete` for that path.
    req.on('data', keepClass);
    void answer(req, res);
    return true;
  };
}

/** The scrape request's 'data' listener (a GET has no body): it reads it as an inference request is read. */
const keepClass = (): void => undefined;

/**
 * Writes a whole answer through Node's HTTP code the way Fastify writes an inference answer
 * (`reply.send` of a string: `lib/reply.js`, `onSendEnd`), so that a scrape gives the code both
 * share nothing new to optimise for: the headers in an object built from `{}` one key at a time
 * (Fastify's reply headers: the same hidden class when the keys come in the same order), the
 * length as a string, `writeHead(status, headers)`, then `end(body, null, null)`. An object
 * literal, a numeric length or `end(body)` alone would each be a second shape or type at those
 * call sites of `ServerResponse`, which V8 has optimised for the inference answers alone.
 */
function answerLikeFastify(res: ServerResponse, status: number, contentType: string, body: string): void {
  const headers: Record<string, string> = {};
  headers['content-type'] = contentType;
  headers['content-length'] = '' + Buffer.byteLength(body);
  res.writeHead(status, headers);
  // Fastify passes null for the encoding and the callback (as Node reads them: none).
  res.end(body, null as unknown as BufferEncoding, null as unknown as () => void);
}
