import type { FastifyInstance, FastifyRequest, RouteOptions } from 'fastify';

/** The API's paths: `/v1` and the Open Inference Protocol's `/v2` (not the console, /metrics or /sdk). */
function isApiPath(url: string): boolean {
  return url === '/v1' || url.startsWith('/v1/') || url === '/v2' || url.startsWith('/v2/');
}

/**
 * The route's schema with a query string that refuses parameters it does not declare: a typo
 * such as `?nmae=` is a 400 `invalid_request` naming it, as an unknown body field is, never a
 * filter silently ignored. A route that declares no query string takes none; one that says
 * `additionalProperties` itself keeps its word.
 */
export function withStrictQuery(schema: RouteOptions['schema']): NonNullable<RouteOptions['schema']> {
  const querystring = (schema?.querystring ?? { type: 'object', properties: {} }) as Record<string, unknown>;
  if ('additionalProperties' in querystring) return { ...schema, querystring };
  return { ...schema, querystring: { ...querystring, additionalProperties: false } };
}

/**
 * Makes every API route registered from now on (in this instance and the plugins it registers)
 * refuse unknown query parameters. Call before the routes are registered. The app's ajv must
 * keep `removeAdditional: false`, or the parameters would be stripped instead of refused.
 */
export function refuseUnknownQueryParameters(app: FastifyInstance): void {
  app.addHook('onRoute', (route) => {
    if (isApiPath(route.url)) route.schema = withStrictQuery(route.schema);
  });
}

/**
 * Whether the request names a query parameter its route refuses (see {@link withStrictQuery}).
 * For hooks that act before validation (a cluster node's forwarding): such a request is left
 * to the route's own validation, so a node answers the same 400 whether or not it serves the
 * pipeline.
 */
export function hasRefusedQueryParameter(req: FastifyRequest): boolean {
  const schema = req.routeOptions.schema?.querystring as
    { properties?: Record<string, unknown>; additionalProperties?: unknown } | undefined;
  if (schema === undefined || schema.additionalProperties !== false) return false;
  const declared = schema.properties ?? {};
  const query = req.query as Record<string, unknown> | null | undefined;
  return Object.keys(query ?? {}).some((name) => !Object.hasOwn(declared, name));
}
