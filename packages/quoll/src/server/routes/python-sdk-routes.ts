import { createReadStream } from 'node:fs';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { ApiError } from '../../errors/index.js';
import { normalizeProjectName, renderProjectList, renderProjectPage } from '../../python-sdk/index.js';
import type { PythonSdk } from '../../python-sdk/index.js';
import type { ServerContext } from '../server-context.js';

/** Where the Python client is served; public (no token), so `pip install` needs no credentials. */
export const PYTHON_SDK_PREFIX = '/sdk/python/';

const HTML = 'text/html; charset=utf-8';

function sdkOf(ctx: ServerContext): PythonSdk {
  if (ctx.pythonSdk === null) {
    throw new ApiError(
      'internal_error',
      'This server was installed without its Python client (python-sdk/ is missing); reinstall quoll or run npm run build.',
    );
  }
  return ctx.pythonSdk;
}

function html(reply: FastifyReply, body: string): FastifyReply {
  return reply.header('content-type', HTML).header('cache-control', 'no-cache').send(body);
}

/**
 * The Python client as a PEP 503 simple index, so a notebook can
 * `pip install --index-url http://HOST:PORT/sdk/python/simple/ quoll` from its own Quoll:
 * `GET /sdk/python/simple/` (projects), `/sdk/python/simple/quoll/` (files, with `#sha256=`),
 * `/sdk/python/files/<wheel>`.
 */
export function pythonSdkRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const schema = (summary: string): { tags: string[]; summary: string; security: never[] } => ({
    tags: ['python sdk'],
    summary,
    security: [],
  });

  app.get('/sdk/python/simple', { schema: { hide: true } }, (_req, reply) =>
    reply.redirect('/sdk/python/simple/', 301),
  );

  app.get(
    '/sdk/python/simple/',
    { schema: schema('PEP 503 simple index of the Python client (no token needed): the project list') },
    (_req, reply) => html(reply, renderProjectList([sdkOf(ctx)])),
  );

  app.get<{ Params: { project: string } }>(
    '/sdk/python/simple/:project/',
    {
      schema: {
        ...schema('PEP 503 project page: the wheel of the Python client with its sha256 (no token needed)'),
        params: { type: 'object', required: ['project'], properties: { project: { type: 'string' } } },
      },
    },
    (req, reply) => {
      const sdk = sdkOf(ctx);
      const wanted = normalizeProjectName(req.params.project);
      if (wanted !== normalizeProjectName(sdk.name)) {
        throw new ApiError(
          'route_not_found',
          `This index serves only the "${sdk.name}" project, not "${req.params.project}".`,
        );
      }
      // PEP 503: a non-normalised name may redirect to the normalised URL.
      if (req.params.project !== wanted) return reply.redirect(`../${wanted}/`, 301);
      return html(reply, renderProjectPage([sdk], '../../files/'));
    },
  );

  app.get<{ Params: { file: string } }>(
    '/sdk/python/files/:file',
    {
      schema: {
        ...schema('A file of the Python client index (the wheel; no token needed)'),
        params: { type: 'object', required: ['file'], properties: { file: { type: 'string' } } },
      },
    },
    (req, reply) => {
      const sdk = sdkOf(ctx);
      if (req.params.file !== sdk.wheelFile) {
        throw new ApiError(
          'route_not_found',
          `No file "${req.params.file}" here; the index serves ${sdk.wheelFile}.`,
        );
      }
      return reply
        .header('content-type', 'application/octet-stream')
        .header('etag', `"${sdk.sha256}"`)
        .header('content-disposition', `attachment; filename="${sdk.wheelFile}"`)
        .send(createReadStream(sdk.wheelPath));
    },
  );
}
