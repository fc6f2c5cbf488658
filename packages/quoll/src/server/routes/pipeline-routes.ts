import type { FastifyInstance } from 'fastify';
import type { DeploymentConfigDto } from '@quoll/client/wire';
import type { StepInput } from '../../pipelines/index.js';
import type { ServerContext } from '../server-context.js';
import { principalOf, workspaceIdOf } from '../server-context.js';
import { WORKSPACE_ID_QUERY, workspacesInScope } from './workspace-scope.js';
import { pipelineSchema, pipelineStatusSchema, pipelineVersionSchema } from './schemas.js';

type NameParams = { workspaceId: string; name: string };

/** Pipelines under `/v1/workspaces/:workspaceId/pipelines`. */
export function pipelineRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const base = '/v1/workspaces/:workspaceId/pipelines';

  app.post<{ Params: { workspaceId: string }; Body: { name: string } }>(
    base,
    {
      schema: {
        tags: ['pipelines'],
        summary: 'Build a pipeline (returns the existing one when the name exists)',
        body: {
          type: 'object',
          required: ['name'],
          properties: { name: { type: 'string' } },
          additionalProperties: false,
        },
        response: { 200: pipelineSchema },
      },
    },
    async (req) => ctx.pipelines.build(await workspaceIdOf(ctx, req), req.body.name),
  );

  app.get<{ Params: { workspaceId: string } }>(
    base,
    {
      schema: {
        tags: ['pipelines'],
        summary: 'List pipelines',
        response: { 200: { type: 'array', items: pipelineSchema } },
      },
    },
    async (req) => ctx.pipelines.list(await workspaceIdOf(ctx, req)),
  );

  app.get<{ Querystring: { name?: string; workspaceId?: string; workspaceName?: string } }>(
    '/v1/pipelines',
    {
      schema: {
        tags: ['pipelines'],
        summary:
          'List pipelines across the workspaces the token can see (or one workspace), optionally by exact name',
        querystring: {
          type: 'object',
          properties: {
            name: {
              type: 'string',
              description: 'only pipelines with this exact name (at most one per workspace)',
            },
            workspaceId: WORKSPACE_ID_QUERY,
            workspaceName: { type: 'string', description: 'only this workspace' },
          },
          additionalProperties: false,
        },
        response: { 200: { type: 'array', items: pipelineSchema } },
      },
    },
    async (req) => {
      const scope = await workspacesInScope(ctx, principalOf(req), req.query);
      return ctx.pipelines.listIn(
        [...scope.keys()],
        req.query.name === undefined ? {} : { name: req.query.name },
      );
    },
  );

  app.get<{ Params: NameParams }>(
    `${base}/:name`,
    { schema: { tags: ['pipelines'], summary: 'Get a pipeline', response: { 200: pipelineSchema } } },
    async (req) => ctx.pipelines.get(await workspaceIdOf(ctx, req), req.params.name),
  );

  app.put<{ Params: NameParams; Body: { steps: StepInput[] } }>(
    `${base}/:name/steps`,
    {
      schema: {
        tags: ['pipelines'],
        summary: 'Replace the draft steps (persisted as a version at deploy)',
        body: {
          type: 'object',
          required: ['steps'],
          properties: {
            steps: {
              type: 'array',
              maxItems: 64,
              items: {
                type: 'object',
                required: ['modelName', 'modelVersion'],
                properties: { modelName: { type: 'string' }, modelVersion: { type: 'string' } },
                additionalProperties: false,
              },
            },
          },
          additionalProperties: false,
        },
        response: { 200: pipelineSchema },
      },
    },
    async (req) => ctx.pipelines.setSteps(await workspaceIdOf(ctx, req), req.params.name, req.body.steps),
  );

  app.get<{ Params: NameParams }>(
    `${base}/:name/versions`,
    {
      schema: {
        tags: ['pipelines'],
        summary: 'Pipeline versions, newest first',
        response: { 200: { type: 'array', items: pipelineVersionSchema } },
      },
    },
    async (req) => ctx.pipelines.versions(await workspaceIdOf(ctx, req), req.params.name),
  );

  app.post<{ Params: NameParams; Body: { config?: DeploymentConfigDto; wait?: boolean } | undefined }>(
    `${base}/:name/deploy`,
    {
      schema: {
        tags: ['pipelines'],
        summary:
          'Persist the steps as a new version (unchanged steps reuse the newest) and deploy it; with wait, answer when Running or Error',
        body: {
          type: 'object',
          properties: {
            wait: { type: 'boolean' },
            config: {
              type: 'object',
              description:
                'Deployment settings; Wallaroo names map onto this server (replicas, cpus, memory), and what cannot be honoured is refused',
              properties: {
                replicas: {
                  type: 'integer',
                  minimum: 1,
                  maximum: 1024,
                  description:
                    "Nodes serving the pipeline (Wallaroo's replica_count): on a cluster, that many inference nodes load it and the others forward its requests (default: every inference node); 1 on an embedded server",
                  examples: [1],
                },
                workers: {
                  type: 'integer',
                  minimum: 1,
                  maximum: 64,
                  description: "Worker threads, each on its own core; default: the server's --workers",
                  examples: [1],
                },
                cpus: {
                  type: 'number',
                  exclusiveMinimum: 0,
                  maximum: 64,
                  description:
                    'Cores the pipeline may use (> 0); without workers, ceil(cpus) workers; with workers, they must agree',
                  examples: [0.5],
                },
                memory: {
                  description:
                    'Memory the models may take: bytes, or a quantity such as "512Mi", "1Gi", "2G"; refused when workers × model size is over it',
                  examples: ['1Gi'],
                  // Bytes as a JSON number, or a quantity string (a string of digits is bytes too).
                  anyOf: [
                    { type: 'integer', minimum: 1 },
                    { type: 'string', minLength: 1, maxLength: 32 },
                  ],
                },
              },
              additionalProperties: false,
            },
          },
          additionalProperties: false,
        },
        response: { 200: pipelineStatusSchema },
      },
    },
    async (req) =>
      ctx.pipelines.deploy(
        await workspaceIdOf(ctx, req),
        req.params.name,
        req.body?.config ?? {},
        req.body?.wait ?? true,
      ),
  );

  app.post<{ Params: NameParams }>(
    `${base}/:name/undeploy`,
    {
      schema: {
        tags: ['pipelines'],
        summary: 'Undeploy (a no-op when not deployed)',
        response: { 200: pipelineStatusSchema },
      },
    },
    async (req) => ctx.pipelines.undeploy(await workspaceIdOf(ctx, req), req.params.name),
  );

  app.get<{ Params: NameParams }>(
    `${base}/:name/status`,
    {
      schema: {
        tags: ['pipelines'],
        summary: 'Deployment status: Running exactly when inference will succeed',
        response: { 200: pipelineStatusSchema },
      },
    },
    async (req) => ctx.pipelines.status(await workspaceIdOf(ctx, req), req.params.name),
  );
}
