import Fastify, { LogController, type FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import { installErrorHandlers } from './error-handler.js';
import { connectionRoutes } from './routes/connection-routes.js';
import { inferenceRoutes } from './routes/inference-routes.js';
import { logRoutes } from './routes/log-routes.js';
import { modelRoutes } from './routes/model-routes.js';
import { orchestrationRoutes } from './routes/orchestration-routes.js';
import { pipelineRoutes } from './routes/pipeline-routes.js';
import { taskRoutes } from './routes/task-routes.js';
import { workspaceRoutes } from './routes/workspace-routes.js';
import type { ServerContext } from './server-context.js';

/** Paths that answer without a token. */
const PUBLIC_PATHS = new Set(['/v1/health']);

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
  const app = Fastify({
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
    ajv: { customOptions: { coerceTypes: 'array', removeAdditional: false, allErrors: false } },
  });
  installErrorHandlers(app);
  app.decorateRequest('principal', null);
  app.addHook('onRequest', async (req) => {
    const path = req.url.split('?', 1)[0] ?? '';
    if (PUBLIC_PATHS.has(path)) return;
    if (starting !== null) await starting;
    req.principal = await ctx.tokens.authenticate(req.headers.authorization);
  });

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
          'Liveness (no token needed): status ok, or degraded while the inference log writer retries after a write failure',
        security: [],
      },
    },
    async (): Promise<HealthDto> => {
      const inferenceLogs = ctx.inferenceLogs.state;
      return { status: inferenceLogs === 'open' ? 'ok' : 'degraded', inferenceLogs };
    },
  );
  app.get('/v1/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  workspaceRoutes(app, ctx);
  pipelineRoutes(app, ctx);
  logRoutes(app, ctx);
  await app.register(async (scope) => modelRoutes(scope, ctx));
  await app.register(async (scope) => inferenceRoutes(scope, ctx));
  await app.register(async (scope) => connectionRoutes(scope, ctx));
  await app.register(async (scope) => orchestrationRoutes(scope, ctx));
  await app.register(async (scope) => taskRoutes(scope, ctx));
  for (const register of extraRoutes) {
    await app.register(async (scope) => register(scope, ctx));
  }
  return app;
}
