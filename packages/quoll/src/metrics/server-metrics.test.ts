import { afterEach, describe, expect, it } from 'vitest';
import { ServerMetrics } from './server-metrics.js';

const sources = {
  queueDepths: () => [],
  logQueuedRows: () => 0,
  logBytes: () => Promise.resolve(0),
  logState: () => 'open',
};

const open: ServerMetrics[] = [];
afterEach(() => {
  for (const m of open.splice(0)) m.close();
});

/** The sample lines of the request, rows and latency-count families, in the scrape's order. */
async function inferenceLines(metrics: ServerMetrics): Promise<string[]> {
  open.push(metrics);
  return (await metrics.render())
    .split('\n')
    .filter((l) => /^quoll_inference_(requests_total|rows_total|request_duration_seconds_count)\{/.test(l));
}

describe('ServerMetrics per-request recording', () => {
  it('keeps each pipeline apart when requests of several pipelines and workspaces interleave', async () => {
    const metrics = new ServerMetrics(sources);
    // Same name in two workspaces, two names in one: every switch misses the last-series cache.
    metrics.rowsInferred(1, 'a', 3);
    metrics.inferenceServed(1, 'a', 200, 0.001);
    metrics.rowsInferred(2, 'a', 5);
    metrics.inferenceServed(2, 'a', 200, 0.002);
    metrics.inferenceServed(1, 'b', 404, 0.0001);
    metrics.rowsInferred(1, 'a', 7);
    metrics.inferenceServed(1, 'a', 500, 0.003);
    metrics.inferenceServed(2, 'a', 200, 0.002);
    metrics.inferenceServed(1, 'a', 200, 0.001);
    // A name built anew (as each request's URL parameter is) finds the same series.
    metrics.rowsInferred(1, ['a'].join(''), 1);
    expect(await inferenceLines(metrics)).toEqual([
      'quoll_inference_requests_total{workspace="1",pipeline="a",status="200"} 2',
      'quoll_inference_requests_total{workspace="1",pipeline="a",status="500"} 1',
      'quoll_inference_requests_total{workspace="1",pipeline="b",status="404"} 1',
      'quoll_inference_requests_total{workspace="2",pipeline="a",status="200"} 2',
      'quoll_inference_request_duration_seconds_count{workspace="1",pipeline="a"} 3',
      'quoll_inference_request_duration_seconds_count{workspace="1",pipeline="b"} 1',
      'quoll_inference_request_duration_seconds_count{workspace="2",pipeline="a"} 2',
      'quoll_inference_rows_total{workspace="1",pipeline="a"} 11',
      'quoll_inference_rows_total{workspace="1",pipeline="b"} 0',
      'quoll_inference_rows_total{workspace="2",pipeline="a"} 5',
    ]);
    const totals = metrics.pipelineTotals().map(({ workspaceId, pipeline, count, rows, errors }) => ({
      workspaceId,
      pipeline,
      count,
      rows,
      errors,
    }));
    expect(totals).toEqual([
      { workspaceId: 1, pipeline: 'a', count: 3, rows: 11, errors: 1 },
      { workspaceId: 1, pipeline: 'b', count: 1, rows: 0, errors: 1 },
      { workspaceId: 2, pipeline: 'a', count: 2, rows: 5, errors: 0 },
    ]);
  });
});
