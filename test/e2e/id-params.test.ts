import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ErrorBody } from '@quoll/client/wire';
import { startTestServer, stopTestServer, type TestServer } from '../support/test-server.js';

// Numeric ids in URLs are read strictly: only the canonical decimal form names a workspace.
// `Number()` read `0x1`, `1e0`, `+1`, ` 1` and `01` as workspace 1, so
// /v1/workspaces/0x1 answered workspace 1 (and a listing's ?workspaceId=0x1 was coerced to 1 by
// the schema validator); an id past the stores' 32-bit range reached the database.

let server: TestServer;

beforeAll(async () => {
  server = await startTestServer({ env: { QUOLL_INFERENCE_LOGS: 'off' } });
});

afterAll(() => stopTestServer(server));

/** Other spellings of 1 (the default workspace), and what is no id at all. */
const NOT_IDS = [
  '0x1',
  '1e0',
  '+1',
  '%201',
  '1%20',
  '01',
  '1.0',
  '0',
  '-1',
  '0b1',
  '2147483648',
  '99999999999999999999',
];

async function call(method: string, path: string): Promise<{ status: number; code?: string }> {
  const res = await fetch(`${server.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${server.token}`,
      ...(method === 'GET' ? {} : { 'content-type': 'application/json' }),
    },
    ...(method === 'GET'
      ? {}
      : { body: method === 'POST' && path.endsWith('/infer') ? '[{"x":[1]}]' : '{}' }),
    signal: AbortSignal.timeout(30_000),
  });
  const text = await res.text();
  if (res.status < 400) return { status: res.status };
  return { status: res.status, code: (JSON.parse(text) as ErrorBody).error.code };
}

const PATH_ROUTES: [string, (id: string) => string][] = [
  ['GET', (id) => `/v1/workspaces/${id}`],
  ['GET', (id) => `/v1/workspaces/${id}/pipelines`],
  ['GET', (id) => `/v1/workspaces/${id}/pipelines/nope`],
  ['GET', (id) => `/v1/workspaces/${id}/models`],
  ['GET', (id) => `/v1/workspaces/${id}/connections`],
  ['GET', (id) => `/v1/workspaces/${id}/pipelines/nope/logs`],
  ['POST', (id) => `/v1/workspaces/${id}/pipelines/nope/infer`],
  ['POST', (id) => `/v1/workspaces/${id}/tokens`],
];

const QUERY_ROUTES = ['/v1/pipelines', '/v1/models', '/v1/tasks', '/v1/orchestrations'];

describe('numeric ids in URLs', () => {
  it('a path id that is not canonical decimal in range is invalid_request (400) on every route, and 1 is not', async () => {
    for (const [method, path] of PATH_ROUTES) {
      const good = await call(method, path('1'));
      expect(good.status, `${method} ${path('1')}: ${good.code ?? ''}`).not.toBe(400);
      for (const id of NOT_IDS) {
        const answer = await call(method, path(id));
        expect(answer, `${method} ${path(id)}`).toEqual({ status: 400, code: 'invalid_request' });
      }
    }
  });

  it("a listing's ?workspaceId that is not canonical decimal in range is invalid_request (400)", async () => {
    for (const route of QUERY_ROUTES) {
      const good = await call('GET', `${route}?workspaceId=1`);
      expect(good.status, `${route}?workspaceId=1`).toBe(200);
      for (const id of NOT_IDS) {
        const answer = await call('GET', `${route}?workspaceId=${id}`);
        expect(answer, `${route}?workspaceId=${id}`).toEqual({ status: 400, code: 'invalid_request' });
      }
    }
  });

  it('no token is made by a refused POST /v1/workspaces/0x1/tokens', async () => {
    const before = await fetch(`${server.url}/v1/workspaces/1`, {
      headers: { authorization: `Bearer ${server.token}` },
    });
    expect(before.status).toBe(200);
    const res = await fetch(`${server.url}/v1/workspaces/0x1/tokens`, {
      method: 'POST',
      headers: { authorization: `Bearer ${server.token}`, 'content-type': 'application/json' },
      body: '{}',
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { token?: string }).token).toBeUndefined();
  });
});
