import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { errorBody } from '../error-handler.js';
import type { ServerContext } from '../server-context.js';

/** Where `npm run build` puts the console's static files (shipped in the package). */
export const DEFAULT_CONSOLE_DIR = fileURLToPath(new URL('../../../console/', import.meta.url));

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
  '.woff2': 'font/woff2',
};

/** The page's rules: only this origin's scripts, styles and API; never framed. */
const CSP =
  "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

interface Asset {
  body: Buffer;
  gzip: Buffer | null;
  brotli: Buffer | null;
  type: string;
  /** A strong validator of the body (revalidation of index.html answers 304). */
  etag: string;
}

async function readOptional(file: string): Promise<Buffer | null> {
  try {
    return await readFile(file);
  } catch {
    return null;
  }
}

/**
 * Whether a path belongs to the console (everything but the API, the Open Inference Protocol's
 * `/v2`, /metrics and the Python index).
 */
export function isConsolePath(path: string): boolean {
  return !(
    path === '/v1' ||
    path.startsWith('/v1/') ||
    path === '/v2' ||
    path.startsWith('/v2/') ||
    path === '/metrics' ||
    path.startsWith('/sdk/')
  );
}

/** The routes that serve the console's page and files (`/` and the catch-all). */
const PAGE_ROUTES: ReadonlySet<string> = new Set(['/', '/*']);

/**
 * Whether a request the router matched to `route` (its pattern, `req.routeOptions.url`;
 * undefined when none matched) is for the console's page or files, which GET and HEAD may
 * read without a token. Decided on the matched route and the decoded path, never on the raw
 * URL alone: the router percent-decodes, so `/%76%31/openapi.json` is `/v1/openapi.json`.
 */
export function isConsolePageRoute(route: string | undefined, rawPath: string): boolean {
  if (route === undefined || !PAGE_ROUTES.has(route)) return false;
  const path = decodeURIComponentSafe(rawPath);
  return path !== null && isConsolePath(path);
}

/**
 * Serves the web console at `/`: its built files (hashed assets cached for a year and immutable,
 * the rest revalidated by ETag; brotli or gzip as compressed by the build, when asked) and
 * `index.html` for every other page path, so deep links and reloads work (the
 * console routes in the browser). Without a built console, `/` says how to build it.
 */
export function consoleRoutes(app: FastifyInstance, _ctx: ServerContext, dir = DEFAULT_CONSOLE_DIR): void {
  const root = resolve(dir);
  const built = existsSync(join(root, 'index.html'));
  const cache = new Map<string, Asset | null>();

  const load = async (file: string): Promise<Asset | null> => {
    if (cache.has(file)) return cache.get(file) ?? null;
    let asset: Asset | null = null;
    try {
      const body = await readFile(file);
      const type = TYPES[extname(file)] ?? 'application/octet-stream';
      const compressible = /^(text\/|application\/json|image\/svg)/.test(type) && body.length > 1024;
      // The build writes .br and .gz beside each file; gzip here only when one is missing.
      const [br, gz] = compressible
        ? await Promise.all([readOptional(`${file}.br`), readOptional(`${file}.gz`)])
        : [null, null];
      const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`;
      asset = { body, gzip: compressible ? (gz ?? gzipSync(body)) : null, brotli: br, type, etag };
    } catch {
      asset = null;
    }
    if (cache.size < 512) cache.set(file, asset);
    return asset;
  };

  const send = (req: FastifyRequest, reply: FastifyReply, asset: Asset, immutable: boolean): FastifyReply => {
    reply.header('content-type', asset.type);
    reply.header('x-content-type-options', 'nosniff');
    reply.header('cache-control', immutable ? 'public, max-age=31536000, immutable' : 'no-cache');
    if (asset.type.startsWith('text/html')) {
      reply.header('content-security-policy', CSP);
      reply.header('referrer-policy', 'no-referrer');
      reply.header('x-frame-options', 'DENY');
    }
    reply.header('vary', 'accept-encoding');
    reply.header('etag', asset.etag);
    const known = req.headers['if-none-match'];
    if (known !== undefined && known.split(',').some((tag) => tag.trim() === asset.etag))
      return reply.status(304).send();
    const accepts = String(req.headers['accept-encoding'] ?? '');
    if (asset.brotli !== null && /\bbr\b/.test(accepts)) {
      reply.header('content-encoding', 'br');
      return reply.send(asset.brotli);
    }
    if (asset.gzip !== null && /\bgzip\b/.test(accepts)) {
      reply.header('content-encoding', 'gzip');
      return reply.send(asset.gzip);
    }
    return reply.send(asset.body);
  };

  const handler = async (req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
    const path = decodeURIComponentSafe(req.url.split('?', 1)[0] ?? '/');
    if (path === null || !isConsolePath(path)) {
      return reply
        .status(404)
        .send(
          errorBody(
            'route_not_found',
            `No route ${req.method} ${req.url.split('?')[0] ?? ''}; the OpenAPI document at /v1/openapi.json lists the API.`,
          ),
        );
    }
    if (!built) {
      return reply
        .status(404)
        .header('content-type', 'text/plain; charset=utf-8')
        .send('The web console is not built in this installation: run `npm run build` in the repository.\n');
    }
    const file = resolve(root, '.' + path);
    if (path !== '/' && (file === root || file.startsWith(root + sep)) && extname(file) !== '') {
      const asset = await load(file);
      if (asset !== null) return send(req, reply, asset, path.startsWith('/assets/'));
      return reply.status(404).header('content-type', 'text/plain; charset=utf-8').send('Not found\n');
    }
    const index = await load(join(root, 'index.html'));
    if (index === null) return reply.status(500).send('The console has no index.html\n');
    return send(req, reply, index, false);
  };

  app.get(
    OVERVIEW_PATH,
    {
      schema: {
        tags: ['console'],
        summary:
          "The console's first page in one answer: health, the metrics window, workspaces, pipelines, the status of each deployed one, and tasks, exactly as their own GET routes answer them for this caller",
      },
    },
    async (req, reply) => {
      reply.header('content-type', 'application/json; charset=utf-8');
      try {
        return reply.send(await overview(app, req));
      } catch (err) {
        if (err instanceof PartFailed) return reply.status(err.statusCode).send(err.body);
        throw err;
      }
    },
  );
  app.get('/*', { schema: { hide: true } }, handler);
  app.get('/', { schema: { hide: true } }, handler);
}

/** `GET /v1/console/overview`: what the console's first page shows, in one round trip. */
export const OVERVIEW_PATH = '/v1/console/overview';

/** The overview's parts and the GET route each is read from. */
const OVERVIEW_PARTS: ReadonlyArray<[string, string]> = [
  ['health', '/v1/health'],
  ['window', '/v1/metrics/window'],
  ['workspaces', '/v1/workspaces'],
  ['pipelines', '/v1/pipelines'],
  ['tasks', '/v1/tasks'],
];

/**
 * The overview's JSON: each part is what its own route answers this request's caller (the same
 * cookie or bearer token, so the same scope and checks, in process), spliced in as sent; then
 * `statuses`, `"<workspace id>/<name>"` → the status of each deployed pipeline. A part that
 * fails makes the whole fail with its status and error.
 */
async function overview(app: FastifyInstance, req: FastifyRequest): Promise<string> {
  const headers: Record<string, string> = {};
  if (req.headers.cookie !== undefined) headers.cookie = req.headers.cookie;
  if (req.headers.authorization !== undefined) headers.authorization = req.headers.authorization;
  const get = async (url: string): Promise<string> => {
    const res = await app.inject({ method: 'GET', url, headers });
    if (res.statusCode !== 200) {
      throw new PartFailed(res.statusCode, res.body);
    }
    return res.body;
  };
  const bodies = await Promise.all(OVERVIEW_PARTS.map(([, url]) => get(url)));
  const pipelines = JSON.parse(bodies[OVERVIEW_PARTS.findIndex(([k]) => k === 'pipelines')]!) as Array<{
    workspaceId: number;
    name: string;
    deployed: boolean;
  }>;
  const deployed = pipelines.filter((p) => p.deployed);
  const statuses = await Promise.all(
    deployed.map((p) =>
      get(`/v1/workspaces/${p.workspaceId}/pipelines/${encodeURIComponent(p.name)}/status`),
    ),
  );
  const parts = OVERVIEW_PARTS.map(([key], i) => `${JSON.stringify(key)}:${bodies[i]!}`);
  const byName = deployed.map((p, i) => `${JSON.stringify(`${p.workspaceId}/${p.name}`)}:${statuses[i]!}`);
  return `{${parts.join(',')},"statuses":{${byName.join(',')}}}`;
}

/** A part of the overview answered with an error: the overview answers the same. */
class PartFailed extends Error {
  constructor(
    readonly statusCode: number,
    readonly body: string,
  ) {
    super(`an overview part answered ${statusCode}`);
  }
}

function decodeURIComponentSafe(path: string): string | null {
  try {
    const decoded = decodeURIComponent(path);
    return decoded.includes('\0') ? null : decoded;
  } catch {
    return null;
  }
}
