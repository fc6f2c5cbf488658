import { createServer, type Server } from 'node:http';
import Fastify, {
  LogController,
  type FastifyInstance,
  type FastifyRequest,
  type FastifyServerOptions,
} from 'fastify';
import swagger from '@fastify/swagger';
import { ApiError } from '../errors/index.js';
import {
  answerClientError,
  apiErrorHandler,
  installErrorHandlers,
  logAnsweredError,
  privatePaths,
} from './error-handler.js';
import { BodyReceiveDeadline } from './body-receive-deadline.js';
import { AnswerSendDeadline } from './answer-send-deadline.js';
import { ConnectionDrain } from './connection-drain.js';
import { refuseUnknownQueryParameters } from './strict-query.js';
import { connectionRoutes } from './routes/connection-routes.js';
import { inferenceRoutes } from './routes/inference-routes.js';
import { logRoutes } from './routes/log-routes.js';
import { modelRoutes } from './routes/model-routes.js';
import { OPEN_INFERENCE_PUBLIC_PATHS, openInferenceRoutes } from './routes/open-inference-routes.js';
import { orchestrationRoutes } from './routes/orchestration-routes.js';
import { pipelineRoutes } from './routes/pipeline-routes.js';
import { PYTHON_SDK_PREFIX, pythonSdkRoutes } from './routes/python-sdk-routes.js';
import { clusterRoutes } from './routes/cluster-routes.js';
import { taskRoutes } from './routes/task-routes.js';
import { METRICS_PATH, metricsRoutes } from './routes/metrics-routes.js';
import { metricsScrape } from './metrics-scrape.js';
import { SESSION_PATH, sessionRoutes } from './routes/session-routes.js';
import { tokenRoutes } from './routes/token-routes.js';
import { isSignInLink } from '../auth/index.js';
import { authenticateRequest } from './authenticate-request.js';
import { consoleRoutes, isConsolePageRoute } from './routes/console-routes.js';
import { workspaceRoutes } from './routes/workspace-routes.js';
import { schemaHealth } from './schema-health.js';
import type { SchemaHealthDto } from './schema-health.js';
import type { ServerContext } from './server-context.js';
import { strictBodyValidator } from './strict-body-validator.js';

/** Paths that answer without a token (besides the Python client index under `/sdk/python/`). */
const PUBLIC_PATHS = new Set(['/v1/health', ...OPEN_INFERENCE_PUBLIC_PATHS]);

/** Route registrars that domains add (connections, logs, orchestrations, tasks). */
export type RouteRegistrar = (app: FastifyInstance, ctx: ServerContext) => void | Promise<void>;

/** Options of {@link createApp}. */
export interface CreateAppOptions {
  /**
   * Resolves when the services behind the routes have started. Requests (but health) that
   * arrive before wait for it, so an early request never meets a half-started server; if it
   * rejects, they fail with its error.
   * @default already started
   */
  ready?: Promise<void>;
}

/** The body of `GET /v1/health`. */
export interface HealthDto {
  /** `degraded` while something keeps working at reduced capacity (see the fields). */
  status: 'ok' | 'degraded';
  /** The inference log writer: `retrying` after a write failure (rows stay queued). */
  inferenceLogs: string;
  /**
   * How task runs are isolated: `sandboxed` (bubblewrap) or not, with the `reason`; the run
   * network; and `unsandboxedRuns` = `admin-only` when workspace-scoped tokens may not start runs.
   */
  runs: {
    launcher: string;
    sandboxed: boolean;
    reason: string | null;
    network: string;
    unsandboxedRuns: 'allowed' | 'admin-only';
  };
  /** The metadata database: `unavailable` while it cannot be reached (the server keeps reconnecting). */
  database: 'ok' | 'unavailable';
  /** This node's id. */
  node: string;
  /**
   * The database's schema against this node's code: `schema_ahead` once a node of a newer
   * release migrated it (the node keeps serving, and is the next to replace), with `message`.
   */
  schema: SchemaHealthDto;
}

/**
 * Builds the Fastify app: structured logs, bearer auth on every route but health,
 * the OpenAPI document, and the domain routes. Does not listen.
 */
export async function createApp(
  ctx: ServerContext,
  extraRoutes: RouteRegistrar[] = [],
  options: CreateAppOptions = {},
): Promise<FastifyInstance> {
  let starting: Promise<void> | null = options.ready ?? null;
  // Once settled the gate is dropped, so the hot path does not await on every request.
  void starting?.then(
    () => (starting = null),
    () => undefined,
  );
  // GET /metrics is answered before Fastify routes anything (metrics-scrape.ts says why).
  const scrape = metricsScrape(ctx, {
    ready: () => starting,
    privatePaths: privatePaths(ctx.config.home),
    logError: (err, apiError) => logAnsweredError(app.log, apiError, err),
  });
  // Bodies that trickle are cut (408) so they cannot hold the body budget or a socket forever.
  const bodyDeadline = new BodyReceiveDeadline(
    { idleMs: ctx.config.bodyIdleTimeoutMs, minBytesPerSecond: ctx.config.bodyMinBytesPerSecond },
    (req, why, received) => {
      // Before the 408 is written: the client may send its next request as soon as it reads it.
      ctx.bodyBudget.release(req);
      app.log.warn(
        { method: req.method, url: req.url, why, received },
        'request body too slow: answered 408 and closed the connection',
      );
    },
  );
  // Answers a client leaves unread are cut, so they cannot hold memory or the body budget forever.
  // Answers a client reads too slowly (a few bytes now and then) are cut the same way.
  const answerDeadline = new AnswerSendDeadline(
    { idleMs: ctx.config.answerIdleTimeoutMs, minBytesPerSecond: ctx.config.answerMinBytesPerSecond },
    (socket, why, unsent) =>
      app.log.warn(
        {
          remoteAddress: socket.remoteAddress,
          why,
          unsentBytes: unsent,
          idleMs: ctx.config.answerIdleTimeoutMs,
        },
        why === 'idle'
          ? 'answer unread: the client read none of it for the idle timeout; closed the connection'
          : 'answer read too slowly: under the minimum rate after the idle timeout; closed the connection',
      ),
  );
  // A stop closes every connection once its requests are answered, and cuts one that has not
  // sent a whole request within a grace (connection-drain.ts says why Node alone does not).
  const drain = new ConnectionDrain();
  const app = Fastify({
    // The server Fastify would build (HTTP/1.1, its timeouts), with the scrape in front.
    serverFactory: (handler, opts: FastifyServerOptions & { http?: object }): Server => {
      const server = createServer(opts.http ?? {}, (req, res) => {
        // First: every request object gets the same hidden class (body-budget.ts, `mark`).
        ctx.bodyBudget.mark(req);
        // During a stop, a pipelined request behind an answer that closes the connection is not run.
        if (!drain.track(req, res)) return;
        if (scrape(req, res)) return;
        bodyDeadline.watch(req, res);
        handler(req, res);
      });
      server.once('close', () => bodyDeadline.stop());
      answerDeadline.attach(server);
      drain.attach(server);
      if (opts.keepAliveTimeout !== undefined) server.keepAliveTimeout = opts.keepAliveTimeout;
      if (opts.requestTimeout !== undefined) server.requestTimeout = opts.requestTimeout;
      if (opts.connectionTimeout !== undefined) server.setTimeout(opts.connectionTimeout);
      if ((opts.maxRequestsPerSocket ?? 0) > 0) server.maxRequestsPerSocket = opts.maxRequestsPerSocket!;
      return server;
    },
    logger: ctx.config.logging
      ? {
          level: ctx.config.logLevel,
          // Request bodies are never logged; if one ever reaches a log line, connection
          // details (and anything else a body carries) print as the mask.
          redact: {
            paths: ['req.headers.authorization', 'req.body', 'body', 'details', 'connection.details'],
            censor: '*****',
          },
        }
      : false,
    // Per-request info lines would dominate the inference hot path; errors are still logged.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 16 * 1024 * 1024,
    forceCloseConnections: false,
    return503OnClosing: true,
    // Requests the HTTP parser or the router refuses answer with the catalogue's body too.
    clientErrorHandler: answerClientError,
    frameworkErrors: (err, req, reply) => apiErrorHandler(privatePaths(ctx.config.home))(err, req, reply),
    // Query strings, path parameters and headers coerce ('10' is 10); bodies never do.
    ajv: { customOptions: { coerceTypes: 'array', removeAdditional: false, allErrors: false } },
    schemaController: strictBodyValidator(),
  });
  // Fastify's close: before the listener closes (preClose), the connections begin their drain.
  app.addHook('preClose', (done) => {
    drain.drain();
    done();
  });
  installErrorHandlers(app, privatePaths(ctx.config.home));
  // Before any route: a query parameter an API route does not declare is refused (400), as an
  // unknown body field is (removeAdditional stays false above, so nothing is stripped instead).
  refuseUnknownQueryParameters(app);
  app.decorateRequest('principal', null);
  // One callback hook for every request (no promise per request on the hot path): the
  // declared body length against the route's cap, then the principal. (Inference answers are
  // timed from Fastify's own start time, count-inferences.ts.)
  app.addHook('onRequest', (req, _reply, done) => {
    // No route decodes compressed bodies: read as they are, a gzip body would be a misleading
    // JSON or ONNX error, and a brotli one of valid-looking bytes would be taken as sent.
    const encoding = req.headers['content-encoding'];
    if (encoding !== undefined && encoding.trim().toLowerCase() !== 'identity') {
      done(
        new ApiError(
          'unsupported_media_type',
          `Content-Encoding ${JSON.stringify(encoding)} is not accepted; send the body uncompressed (without Content-Encoding).`,
          { contentEncoding: encoding },
        ),
      );
      return;
    }
    // Streamed uploads: refuse a declared length over the route's cap before reading the body
    // (the stores still enforce the cap while they write, for chunked bodies).
    const cap = req.routeOptions.config.maxBodyBytes;
    if (cap !== undefined) {
      const declared = Number(req.headers['content-length']);
      if (Number.isFinite(declared) && declared > cap) {
        done(
          new ApiError(
            'payload_too_large',
            `The body is ${declared} bytes; this route takes at most ${cap}.`,
            {
              maxBytes: cap,
            },
          ),
        );
        return;
      }
    }
    // What is public is decided on the route the router matched, not on the raw URL: the router
    // percent-decodes the path, so `/%76%31/openapi.json` reaches `/v1/openapi.json`.
    const route = req.routeOptions.url;
    if (route !== undefined && (PUBLIC_PATHS.has(route) || route.startsWith(PYTHON_SDK_PREFIX))) {
      return done();
    }
    if (route === METRICS_PATH && ctx.config.metricsPublic) return done();
    // The console's page and files are public; what they show comes from the API.
    if (req.method === 'GET' || req.method === 'HEAD') {
      const url = req.url;
      const query = url.indexOf('?');
      if (isConsolePageRoute(route, query === -1 ? url : url.slice(0, query))) return done();
    }
    // Signing in (a link's code or a pasted token in the body) needs no principal yet.
    const signingIn = route === SESSION_PATH && req.method === 'POST';
    // Started, and a bearer token whose lookup is cached: no promise.
    if (starting === null && !signingIn) {
      const cached = ctx.tokens.cachedPrincipal(req.headers.authorization);
      if (cached !== null && !isSignInLink(cached)) {
        req.principal = cached;
        return done();
      }
    }
    authenticateSlowly(req, signingIn).then(() => done(), done);
  });
  const authenticateSlowly = async (req: FastifyRequest, signingIn: boolean): Promise<void> => {
    if (starting !== null) await starting;
    if (signingIn) return;
    req.principal = await authenticateRequest(ctx, req);
  };

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Quoll API',
        version: '0.1.0',
        description:
          'Workspaces, models, pipelines, inference, inference logs, connections, orchestrations and tasks. Every route but /v1/health needs "Authorization: Bearer <token>". Errors are { error: { code, message, details? } } with codes from the catalogue (docs/errors.md).',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
  });

  app.get(
    '/v1/health',
    {
      schema: {
        tags: ['health'],
        summary:
          'Liveness (no token needed): status ok, or degraded while the inference log writer retries after a write failure, the database cannot be reached, or the schema is ahead of this node (schema.status schema_ahead: a node of a newer release migrated it; this node keeps serving and is the next to replace); database and node: this node and its database; runs: whether task runs are sandboxed (and why not), their network, and whether workspace-scoped tokens may start them',
        security: [],
      },
    },
    async (): Promise<HealthDto> => {
      const inferenceLogs = ctx.inferenceLogs.state;
      const { launcher, sandboxed, reason, network, unsandboxedRuns } = ctx.runIsolation;
      const database = (await ctx.databaseHealth()).status;
      const schema = schemaHealth(ctx, true);
      return {
        status:
          inferenceLogs === 'open' && database === 'ok' && schema.status === 'current' ? 'ok' : 'degraded',
        inferenceLogs,
        database,
        node: ctx.nodeId,
        schema,
        runs: { launcher, sandboxed, reason, network, unsandboxedRuns },
      };
    },
  );
  app.get('/v1/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  workspaceRoutes(app, ctx);
  pipelineRoutes(app, ctx);
  logRoutes(app, ctx);
  metricsRoutes(app, ctx);
  sessionRoutes(app, ctx);
  tokenRoutes(app, ctx);
  await app.register(async (scope) => modelRoutes(scope, ctx));
  await app.register(async (scope) => inferenceRoutes(scope, ctx));
  await app.register(async (scope) => openInferenceRoutes(scope, ctx, () => starting === null));
  await app.register(async (scope) => connectionRoutes(scope, ctx));
  await app.register(async (scope) => orchestrationRoutes(scope, ctx));
  await app.register(async (scope) => taskRoutes(scope, ctx));
  await app.register(async (scope) => pythonSdkRoutes(scope, ctx));
  await app.register(async (scope) => clusterRoutes(scope, ctx));
  await app.register(async (scope) => consoleRoutes(scope, ctx));
  for (const register of extraRoutes) {
    await app.register(async (scope) => register(scope, ctx));
  }
  return app;
}
