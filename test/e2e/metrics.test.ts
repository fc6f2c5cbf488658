import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'node:http';
import type { Client } from '@quoll/client';
import { makeScaleModel } from '../support/synthetic-models.js';
import { startTestServer, type TestServer } from '../support/test-server.js';

/** GET /metrics (Prometheus) and /v1/metrics/window against a real server with a deployed pipeline. */

let server: TestServer;
let client: Client;
let workspaceId: number;
let scopedToken: string;
let otherToken: string;

beforeAll(async () => {
  server = await startTestServer();
  client = server.client();
  const ws = await client.getWorkspace('metricsws', { createIfNotExist: true });
  workspaceId = ws.id;
  client.setCurrentWorkspace(ws);
  const version = await client.uploadModel('scale', makeScaleModel({ width: 2 }), { fileName: 'scale.onnx' });
  const pipeline = await client.buildPipeline('metricspipe');
  await pipeline.addModelStep(version);
  await pipeline.deploy();
  await pipeline.infer([{ tensor: [1, 2] }, { tensor: [3, 4] }]);
  await pipeline.infer([{ tensor: [5, 6] }]);
  // A bad request to the same pipeline and one to a pipeline that does not exist.
  const url = `${server.url}/v1/workspaces/${workspaceId}/pipelines`;
  const headers = { authorization: `Bearer ${server.token}`, 'content-type': 'application/json' };
  expect(
    (await fetch(`${url}/metricspipe/infer`, { method: 'POST', headers, body: '[{"nope": 1}]' })).status,
  ).toBe(400);
  expect((await fetch(`${url}/no-such-pipe/infer`, { method: 'POST', headers, body: '[]' })).status).toBe(
    404,
  );
  // Refused before the handler: no token (401), a body of a type the route does not take (415).
  const json = { 'content-type': 'application/json' };
  expect(
    (await fetch(`${url}/metricspipe/infer`, { method: 'POST', headers: json, body: '[{"tensor": [1, 2]}]' }))
      .status,
  ).toBe(401);
  expect(
    (
      await fetch(`${url}/metricspipe/infer`, {
        method: 'POST',
        headers: { ...headers, 'content-type': 'application/xml' },
        body: '<tensor/>',
      })
    ).status,
  ).toBe(415);
  // Open Inference: an answer and a bad body are counted; its GETs (metadata, readiness, and a
  // GET the error handler answers) are not.
  const v2 = `${server.url}/v2/workspaces/metricsws/models`;
  // The bad body's data do not fill its shape.
  const tensor = (data: number[]): string =>
    JSON.stringify({ inputs: [{ name: 'tensor', shape: [1, 2], datatype: 'FP32', data }] });
  expect(
    (await fetch(`${v2}/metricspipe/infer`, { method: 'POST', headers, body: tensor([7, 8]) })).status,
  ).toBe(200);
  expect(
    (await fetch(`${v2}/metricspipe/infer`, { method: 'POST', headers, body: tensor([7]) })).status,
  ).toBe(400);
  const auth = { authorization: `Bearer ${server.token}` };
  expect((await fetch(`${v2}/metricspipe`, { headers: auth })).status).toBe(200);
  expect((await fetch(`${v2}/metricspipe/ready`, { headers: auth })).status).toBe(200);
  expect((await fetch(`${v2}/no-such-pipe/ready`, { headers: auth })).status).toBe(404);
  scopedToken = await client.createWorkspaceToken(ws, { subject: 'metrics-scoped' });
  const other = await client.getWorkspace('metricsother', { createIfNotExist: true });
  otherToken = await client.createWorkspaceToken(other, { subject: 'metrics-other' });
}, 120_000);

afterAll(async () => {
  await server?.stop();
  await server?.cleanup();
});

describe('GET /metrics', () => {
  it('answers an admin token with the Prometheus text of requests, latency, rows, batches, log store, tasks and process', async () => {
    const res = await fetch(`${server.url}/metrics`, {
      headers: { authorization: `Bearer ${server.token}` },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    const ws = String(workspaceId);
    // Every answer exactly once, by status: 2 + 1 (OIP) answered, 1 + 1 (OIP) bad input; the
    // OIP GETs not at all.
    const requests = text.split('\n').filter((l) => l.startsWith('quoll_inference_requests_total{'));
    expect(requests.sort()).toEqual(
      [
        `quoll_inference_requests_total{workspace="${ws}",pipeline="metricspipe",status="200"} 3`,
        `quoll_inference_requests_total{workspace="${ws}",pipeline="metricspipe",status="400"} 2`,
        // Refused before any pipeline was found (the unknown pipeline's name never becomes a
        // label value).
        'quoll_inference_requests_total{workspace="0",pipeline="",status="401"} 1',
        'quoll_inference_requests_total{workspace="0",pipeline="",status="404"} 1',
        'quoll_inference_requests_total{workspace="0",pipeline="",status="415"} 1',
      ].sort(),
    );
    expect(text).not.toContain('no-such-pipe');
    expect(text).toContain(
      `quoll_inference_request_duration_seconds_count{workspace="${ws}",pipeline="metricspipe"} 5`,
    );
    expect(text).toContain(
      `quoll_inference_request_duration_seconds_bucket{le="+Inf",workspace="${ws}",pipeline="metricspipe"} 5`,
    );
    expect(text).toContain('quoll_inference_request_duration_seconds_count{workspace="0",pipeline=""} 3');
    // Each answer timed from its arrival: more than nothing, less than the test took.
    const sum = Number(
      /^quoll_inference_request_duration_seconds_sum\{workspace="\d+",pipeline="metricspipe"\} (\S+)$/m.exec(
        text,
      )?.[1],
    );
    expect(sum).toBeGreaterThan(0);
    expect(sum).toBeLessThan(60);
    // 2 + 1 rows on /v1, 1 on OIP.
    expect(text).toContain(`quoll_inference_rows_total{workspace="${ws}",pipeline="metricspipe"} 4`);
    expect(text).toMatch(/^quoll_inference_batch_rows_count [1-9]/m);
    expect(text).toContain(`quoll_inference_queue_depth{workspace="${ws}",pipeline="metricspipe"} 0`);
    expect(text).toMatch(/^quoll_inference_log_bytes \d+/m);
    expect(text).toMatch(/^quoll_inference_log_queue_rows \d+/m);
    expect(text).toContain('quoll_inference_log_writer_up 1');
    expect(text).toContain('quoll_task_runs_running 0');
    expect(text).toContain('# TYPE quoll_task_runs_total counter');
    expect(text).toContain('# TYPE quoll_scheduler_lag_seconds histogram');
    expect(text).toMatch(/^process_resident_memory_bytes \d+/m);
  });

  it('refuses no token (401) and a workspace-scoped token (403 forbidden)', async () => {
    const none = await fetch(`${server.url}/metrics`);
    expect(none.status).toBe(401);
    const scoped = await fetch(`${server.url}/metrics`, {
      headers: { authorization: `Bearer ${scopedToken}` },
    });
    expect(scoped.status).toBe(403);
    expect(((await scoped.json()) as { error: { code: string } }).error.code).toBe('forbidden');
  });

  it('answers a scrape (answered before Fastify routes it) as the rest of the API answers', async () => {
    const admin = { authorization: `Bearer ${server.token}` };
    // Errors carry the catalogue's body and content type.
    const bad = await fetch(`${server.url}/metrics`, { headers: { authorization: 'Basic nope' } });
    expect(bad.status).toBe(401);
    expect(bad.headers.get('content-type')).toMatch(/^application\/json/);
    expect(((await bad.json()) as { error: { code: string } }).error.code).toBe('unauthenticated');
    // A query string is the same path (Prometheus may add one).
    const withQuery = await fetch(`${server.url}/metrics?name[]=up`, { headers: admin });
    expect(withQuery.status).toBe(200);
    expect(withQuery.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(Number(withQuery.headers.get('content-length'))).toBe(Buffer.byteLength(await withQuery.text()));
    // HEAD stays with Fastify's route: same rules, no body.
    expect((await fetch(`${server.url}/metrics`, { method: 'HEAD' })).status).toBe(401);
    const head = await fetch(`${server.url}/metrics`, { method: 'HEAD', headers: admin });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe('');
  });

  it('times an answer from the request’s arrival: a body that arrives late is counted in its latency', async () => {
    // A server of its own, so that this pipeline shows in no other test's figures.
    const own = await startTestServer();
    try {
      const ownClient = own.client();
      const ws = await ownClient.getWorkspace('slowbody', { createIfNotExist: true });
      ownClient.setCurrentWorkspace(ws);
      const version = await ownClient.uploadModel('scale', makeScaleModel({ width: 2 }), {
        fileName: 'scale.onnx',
      });
      const pipeline = await ownClient.buildPipeline('slowbodypipe');
      await pipeline.addModelStep(version);
      await pipeline.deploy();
      const body = '[{"tensor": [1, 2]}]';
      // The headers now, the body 500 ms later: the answer is timed at 0.3 s or more only if its
      // start is taken before the body is read (the margin is the timer's and the socket's slack).
      const status = await new Promise<number>((resolve, reject) => {
        const req = request(
          `${own.url}/v1/workspaces/${ws.id}/pipelines/slowbodypipe/infer`,
          {
            method: 'POST',
            headers: {
              authorization: `Bearer ${own.token}`,
              'content-type': 'application/json',
              'content-length': Buffer.byteLength(body),
            },
          },
          (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode ?? 0));
          },
        );
        req.on('error', reject);
        req.flushHeaders();
        setTimeout(() => req.end(body), 500);
      });
      expect(status).toBe(200);
      const text = await (
        await fetch(`${own.url}/metrics`, { headers: { authorization: `Bearer ${own.token}` } })
      ).text();
      const labels = `workspace="${ws.id}",pipeline="slowbodypipe"`;
      expect(text).toContain(`quoll_inference_request_duration_seconds_count{${labels}} 1`);
      const sum = Number(
        new RegExp(`^quoll_inference_request_duration_seconds_sum\\{${labels}\\} (\\S+)$`, 'm').exec(
          text,
        )?.[1],
      );
      expect(sum).toBeGreaterThanOrEqual(0.3);
      expect(sum).toBeLessThan(60);
    } finally {
      await own.stop();
      await own.cleanup();
    }
  });

  it('answers without a token when the server runs with --metrics-public', async () => {
    const open = await startTestServer({ args: ['--metrics-public'] });
    try {
      const res = await fetch(`${open.url}/metrics`);
      expect(res.status).toBe(200);
      expect(await res.text()).toContain('# TYPE quoll_inference_requests_total counter');
      // Only /metrics is opened: the API still needs a token.
      expect((await fetch(`${open.url}/v1/workspaces`)).status).toBe(401);
    } finally {
      await open.stop();
      await open.cleanup();
    }
  });
});

describe('--no-metrics', () => {
  it('keeps no metrics: /metrics is route_not_found and the window stays empty', async () => {
    const off = await startTestServer({ args: ['--no-metrics'] });
    try {
      const headers = { authorization: `Bearer ${off.token}` };
      const res = await fetch(`${off.url}/metrics`, { headers });
      expect(res.status).toBe(404);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('route_not_found');
      const window = (await (await fetch(`${off.url}/v1/metrics/window`, { headers })).json()) as {
        samples: unknown[];
      };
      expect(window.samples).toEqual([]);
    } finally {
      await off.stop();
      await off.cleanup();
    }
  });
});

describe('GET /v1/metrics/window', () => {
  it('gives the recent samples per pipeline, and a scoped token only its own workspace', async () => {
    type Window = {
      intervalSeconds: number;
      samples: Array<{ time: string; pipelines: Array<{ pipeline: string; workspaceId: number }> }>;
    };
    const get = async (token: string): Promise<Window> => {
      const res = await fetch(`${server.url}/v1/metrics/window`, {
        headers: { authorization: `Bearer ${token}` },
      });
      expect(res.status).toBe(200);
      return (await res.json()) as Window;
    };
    let window = await get(server.token);
    const deadline = Date.now() + 20_000;
    while (window.samples.length === 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 500));
      window = await get(server.token);
    }
    expect(window.intervalSeconds).toBe(5);
    expect(window.samples.length).toBeGreaterThan(0);
    const names = (w: Window): string[] => [
      ...new Set(w.samples.flatMap((s) => s.pipelines.map((p) => p.pipeline))),
    ];
    expect(names(window)).toEqual(['metricspipe']);
    expect(names(await get(scopedToken))).toEqual(['metricspipe']);
    expect(names(await get(otherToken))).toEqual([]);
  }, 30_000);
});
