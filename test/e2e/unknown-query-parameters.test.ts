import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client } from '@quoll/client';
import { startTestServer, stopTestServer, type TestServer } from '../support/test-server.js';
import { createZip } from '../support/zip-builder.js';

/** A query parameter an API route does not declare is refused, never silently ignored. */

let server: TestServer;
let client: Client;

beforeAll(async () => {
  server = await startTestServer();
  client = server.client();
});

afterAll(() => stopTestServer(server));

interface Answer {
  status: number;
  body: { error?: { code: string; message: string; details?: { field?: string; accepted?: string[] } } };
}

async function api(path: string, init: RequestInit = {}): Promise<Answer> {
  const res = await fetch(`${server.url}${path}`, {
    ...init,
    headers: { ...client.authHeader(), ...(init.headers as Record<string, string> | undefined) },
  });
  const text = await res.text();
  return { status: res.status, body: (text === '' ? {} : JSON.parse(text)) as Answer['body'] };
}

/** The refusal's code, message and field: /v2 answers in the Open Inference Protocol's shape (the message in `error`). */
function refusal(url: string, body: Answer['body']): { code?: string; message?: string; field?: string } {
  if (!url.startsWith('/v2')) {
    return { code: body.error?.code, message: body.error?.message, field: body.error?.details?.field };
  }
  const open = body as { error?: unknown; code?: string; details?: { field?: string } };
  return { code: open.code, message: String(open.error), field: open.details?.field };
}

describe('unknown query parameters', () => {
  it('every API route without a body refuses one with 400 invalid_request naming it', async () => {
    const doc = (await (
      await fetch(`${server.url}/v1/openapi.json`, { headers: client.authHeader() })
    ).json()) as {
      paths: Record<string, Record<string, unknown>>;
    };
    const calls: [string, string][] = [['GET', '/v1/openapi.json']];
    for (const [path, operations] of Object.entries(doc.paths)) {
      if (!/^\/v[12](\/|$)/.test(path)) continue;
      const url = path.replace(/\{[^}]+\}/g, '1');
      for (const method of Object.keys(operations)) {
        if (method === 'get' || method === 'delete') calls.push([method.toUpperCase(), url]);
      }
    }
    expect(calls.length).toBeGreaterThan(40);
    for (const [method, url] of calls) {
      const answer = await api(`${url}?nmae=x`, { method });
      const what = `${method} ${url}`;
      expect(answer.status, what).toBe(400);
      const error = refusal(url, answer.body);
      expect(error.code, what).toBe('invalid_request');
      expect(error.field, what).toBe('querystring/nmae');
      expect(error.message, what).toMatch(/^querystring has an unknown parameter "nmae"; accepted: /);
    }
  });

  it('the message lists what the route accepts; the declared parameters still work', async () => {
    await client.buildPipeline('strictquery');
    const typo = await api('/v1/pipelines?nmae=strictquery');
    expect(typo.status).toBe(400);
    expect(typo.body.error?.message).toBe(
      'querystring has an unknown parameter "nmae"; accepted: "name", "workspaceId", "workspaceName".',
    );
    expect(typo.body.error?.details?.accepted).toEqual(['name', 'workspaceId', 'workspaceName']);
    const named = await api('/v1/pipelines?name=strictquery');
    expect(named.status).toBe(200);
    expect((named.body as unknown as { name: string }[]).map((p) => p.name)).toEqual(['strictquery']);
  });

  it('a request with a body and a mistyped parameter changes nothing', async () => {
    const ws = await client.getCurrentWorkspace();
    const zip = await createZip([{ path: 'main.mjs', content: "console.log('strict')" }]);
    const before = (await client.listOrchestrations()).length;
    const upload = await api(`/v1/workspaces/${ws.id}/orchestrations?nmae=typo`, {
      method: 'POST',
      body: zip,
      headers: { 'content-type': 'application/zip' },
    });
    expect(upload.status).toBe(400);
    expect(upload.body.error?.details?.field).toBe('querystring/nmae');
    expect((await client.listOrchestrations()).length).toBe(before);

    const created = await api('/v1/workspaces?createIfNotExits=true', {
      method: 'POST',
      body: JSON.stringify({ name: 'strictqueryws' }),
      headers: { 'content-type': 'application/json' },
    });
    expect(created.status).toBe(400);
    expect(created.body.error?.details?.field).toBe('querystring/createIfNotExits');
    expect((await client.listWorkspaces()).map((w) => w.name)).not.toContain('strictqueryws');
  });
});
