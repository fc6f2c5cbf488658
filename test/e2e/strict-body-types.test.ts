import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client } from '@quoll/client';
import { startTestServer, stopTestServer, type TestServer } from '../support/test-server.js';

// A JSON body field is taken as the type its schema says, never coerced: the validator once ran
// with coerceTypes 'array' for every part of a request, so `{"ttlSeconds":"10"}`, `[5]` and
// `true` issued a token for 10, 5 and 1 seconds. Query strings and path parameters (which only
// ever arrive as text) are still read as the numbers and booleans they spell.

let server: TestServer;
let client: Client;

beforeAll(async () => {
  server = await startTestServer({ env: { QUOLL_INFERENCE_LOGS: 'off' } });
  client = server.client();
});

afterAll(() => stopTestServer(server));

interface Answer {
  status: number;
  body: { error?: { code: string; message: string; details?: { field?: string } } } & Record<string, unknown>;
}

async function api(method: string, path: string, body?: string): Promise<Answer> {
  const res = await fetch(`${server.url}${path}`, {
    method,
    headers: {
      ...client.authHeader(),
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body }),
    signal: AbortSignal.timeout(30_000),
  });
  const text = await res.text();
  return { status: res.status, body: (text === '' ? {} : JSON.parse(text)) as Answer['body'] };
}

interface SchemaNode {
  type?: string | string[];
  properties?: Record<string, SchemaNode>;
}

/** A value of the wrong JSON type that coercion would have turned into a value of `type`. */
const WRONG: Record<string, unknown[]> = {
  integer: ['10', [5], true],
  number: ['10', [5], true],
  boolean: ['true', [true], 1, 'false'],
};

/** The body's integer, number and boolean fields, nested ones as `config/workers`. */
function typedFields(schema: SchemaNode | undefined, prefix = ''): [string, string][] {
  const found: [string, string][] = [];
  for (const [name, node] of Object.entries(schema?.properties ?? {})) {
    const type = Array.isArray(node.type) ? undefined : node.type;
    if (type !== undefined && type in WRONG) found.push([`${prefix}${name}`, type]);
    if (type === 'object') found.push(...typedFields(node, `${prefix}${name}/`));
  }
  return found;
}

/** `{ config: { workers: value } }` for the field `config/workers`. */
function bodyWith(field: string, value: unknown): unknown {
  return field
    .split('/')
    .reverse()
    .reduce<unknown>((inner, name) => ({ [name]: inner }), value);
}

describe('request body types are strict', () => {
  it('ttlSeconds given as a string, an array or a boolean is a 400 invalid_request; no token is issued', async () => {
    const before = await api('GET', '/v1/admin/tokens');
    for (const ttlSeconds of ['10', [5], true, null]) {
      const res = await api('POST', '/v1/workspaces/1/tokens', JSON.stringify({ ttlSeconds }));
      expect(res.status, JSON.stringify(ttlSeconds)).toBe(400);
      expect(res.body.error?.code).toBe('invalid_request');
      expect(res.body.error?.details?.field).toBe('body/ttlSeconds');
      expect(res.body.error?.message).toBe('body/ttlSeconds must be integer.');
    }
    expect((await api('GET', '/v1/admin/tokens')).body).toEqual(before.body);
    const ok = await api('POST', '/v1/workspaces/1/tokens', JSON.stringify({ ttlSeconds: 10 }));
    expect(ok.status).toBe(201);
  });

  it('every integer, number and boolean field of an API route body refuses the other JSON types', async () => {
    const doc = (await api('GET', '/v1/openapi.json')).body as unknown as {
      paths: Record<
        string,
        Record<string, { requestBody?: { content?: Record<string, { schema?: SchemaNode }> } }>
      >;
    };
    let checked = 0;
    for (const [path, operations] of Object.entries(doc.paths)) {
      if (!/^\/v[12](\/|$)/.test(path)) continue;
      const url = path.replace(/\{[^}]+\}/g, '1');
      for (const [method, operation] of Object.entries(operations)) {
        const schema = operation.requestBody?.content?.['application/json']?.schema;
        for (const [field, type] of typedFields(schema)) {
          for (const value of WRONG[type]!) {
            const what = `${method.toUpperCase()} ${path} ${field}=${JSON.stringify(value)}`;
            const res = await api(method.toUpperCase(), url, JSON.stringify(bodyWith(field, value)));
            expect(res.status, what).toBe(400);
            const error = url.startsWith('/v2')
              ? (res.body as { code?: string; details?: { field?: string } })
              : res.body.error;
            expect(error?.code, what).toBe('invalid_request');
            expect(error?.details?.field, what).toBe(`body/${field}`);
            checked += 1;
          }
        }
      }
    }
    expect(checked).toBeGreaterThanOrEqual(16);
  });

  it('query-string numbers and booleans are still read from their text', async () => {
    const created = await api('GET', '/v1/workspaces/by-name/strict-types?createIfNotExist=true');
    expect(created.status).toBe(200);
    expect(created.body.name).toBe('strict-types');
    const refused = await api('GET', '/v1/workspaces/by-name/strict-types?createIfNotExist=yes');
    expect(refused.status).toBe(400);
    expect(refused.body.error?.code).toBe('invalid_request');
  });
});
