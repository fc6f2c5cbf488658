import Fastify, { type FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { strictBodyValidator } from './strict-body-validator.js';

const apps: FastifyInstance[] = [];
afterEach(async () => {
  for (const app of apps.splice(0)) await app.close();
});

/** An app with two routes with schemas; every schema its ajv instances compile is noted in `compiled`. */
async function appNoting(compiled: unknown[]): Promise<FastifyInstance> {
  const app = Fastify({
    schemaController: strictBodyValidator(),
    ajv: {
      onCreate: (ajv) => {
        const compile = ajv.compile.bind(ajv);
        ajv.compile = ((schema: unknown) => {
          compiled.push(schema);
          return compile(schema as object);
        }) as typeof ajv.compile;
      },
    },
  });
  apps.push(app);
  app.post<{ Params: { id: number }; Querystring: { limit?: number }; Body: { ttlSeconds?: number } }>(
    '/a/:id',
    {
      schema: {
        params: { type: 'object', properties: { id: { type: 'integer' } } },
        querystring: { type: 'object', properties: { limit: { type: 'integer' } } },
        body: {
          type: 'object',
          properties: { ttlSeconds: { type: 'integer' } },
          additionalProperties: false,
        },
      },
    },
    (req) => Promise.resolve({ params: req.params, query: req.query, body: req.body }),
  );
  app.post(
    '/b',
    {
      schema: {
        body: { type: 'object', required: ['name'], properties: { name: { type: 'string' } } },
        response: {
          200: { type: 'object', properties: { ok: { type: 'boolean' }, n: { type: 'integer' } } },
        },
      },
    },
    () => Promise.resolve({ ok: true, n: '7', secret: 'not in the schema' }),
  );
  await app.ready();
  return app;
}

describe('strictBodyValidator', () => {
  it("compiles a route's schemas at its first request, once, and no other route's", async () => {
    const compiled: unknown[] = [];
    const app = await appNoting(compiled);
    // A server start compiles nothing: most routes of a server are never called.
    expect(compiled).toHaveLength(0);
    const send = () => app.inject({ method: 'POST', url: '/a/5?limit=3', payload: { ttlSeconds: 10 } });
    expect((await send()).statusCode).toBe(200);
    expect(compiled).toHaveLength(3);
    expect((await send()).statusCode).toBe(200);
    expect(compiled).toHaveLength(3);
  });

  it('answers through the response schema from the first answer on', async () => {
    const app = await appNoting([]);
    for (let i = 0; i < 2; i++) {
      const res = await app.inject({ method: 'POST', url: '/b', payload: { name: 'x' } });
      // fast-json-stringify writes the schema's fields only, as their types.
      expect(res.body).toBe('{"ok":true,"n":7}');
    }
  });

  it('reads query and path parameters as the numbers they spell, and takes a JSON body as its types', async () => {
    const app = await appNoting([]);
    const ok = await app.inject({ method: 'POST', url: '/a/5?limit=3', payload: { ttlSeconds: 10 } });
    expect(ok.json()).toEqual({ params: { id: 5 }, query: { limit: 3 }, body: { ttlSeconds: 10 } });
    // The same refusals, with the same messages, on every request (not only the first).
    for (let i = 0; i < 2; i++) {
      const text = await app.inject({ method: 'POST', url: '/a/5', payload: { ttlSeconds: '10' } });
      expect(text.statusCode).toBe(400);
      expect(text.json()).toMatchObject({ message: 'body/ttlSeconds must be integer' });
      // Fastify's ajv options: properties a schema does not name are dropped.
      const extra = await app.inject({ method: 'POST', url: '/a/5', payload: { ttl: 1 } });
      expect(extra.json()).toEqual({ params: { id: 5 }, query: {}, body: {} });
      const query = await app.inject({ method: 'POST', url: '/a/5?limit=x', payload: {} });
      expect(query.json()).toMatchObject({ message: 'querystring/limit must be integer' });
      const params = await app.inject({ method: 'POST', url: '/a/x', payload: {} });
      expect(params.json()).toMatchObject({ message: 'params/id must be integer' });
      const missing = await app.inject({ method: 'POST', url: '/b', payload: {} });
      expect(missing.json()).toMatchObject({ message: "body must have required property 'name'" });
    }
  });
});
