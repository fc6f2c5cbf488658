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

/** `name{labels} value` lines of a scrape, as a map from `name{labels}` to the value. */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

describe('ServerMetrics counts', () => {
  it("keeps the counts of 40 pipelines apart, each one's rows recorded before its first answer", async () => {
    const metrics = new ServerMetrics(sources);
    open.push(metrics);
    // Each new pipeline's first recording is its rows, as in the server.
    for (let round = 1; round <= 3; round++)
      for (let p = 0; p < 40; p++) {
        metrics.rowsInferred(p % 3, `p${p}`, p + 1);
        metrics.inferenceServed(p % 3, `p${p}`, 200, 0.001 * round);
      }
    const s = samples(await metrics.render());
    for (let p = 0; p < 40; p++) {
      const labels = `workspace="${p % 3}",pipeline="p${p}"`;
      expect(s.get(`quoll_inference_rows_total{${labels}}`), `p${p} rows`).toBe(3 * (p + 1));
      expect(s.get(`quoll_inference_requests_total{${labels},status="200"}`), `p${p}`).toBe(3);
      expect(s.get(`quoll_inference_request_duration_seconds_count{${labels}}`)).toBe(3);
      expect(s.get(`quoll_inference_request_duration_seconds_bucket{le="0.001",${labels}}`)).toBe(1);
      expect(s.get(`quoll_inference_request_duration_seconds_bucket{le="0.005",${labels}}`)).toBe(3);
    }
    expect(metrics.pipelineTotals()).toHaveLength(40);
  });

  it('counts six statuses of one pipeline, in first-seen order, with their errors', async () => {
    const metrics = new ServerMetrics(sources);
    const statuses = [200, 404, 200, 503, 400, 500, 200, 401, 500, 404];
    for (const status of statuses) metrics.inferenceServed(1, 'a', status, 0.002);
    expect(await inferenceLines(metrics)).toEqual([
      'quoll_inference_requests_total{workspace="1",pipeline="a",status="200"} 3',
      'quoll_inference_requests_total{workspace="1",pipeline="a",status="404"} 2',
      'quoll_inference_requests_total{workspace="1",pipeline="a",status="503"} 1',
      'quoll_inference_requests_total{workspace="1",pipeline="a",status="400"} 1',
      'quoll_inference_requests_total{workspace="1",pipeline="a",status="500"} 2',
      'quoll_inference_requests_total{workspace="1",pipeline="a",status="401"} 1',
      'quoll_inference_request_duration_seconds_count{workspace="1",pipeline="a"} 10',
      'quoll_inference_rows_total{workspace="1",pipeline="a"} 0',
    ]);
    const [totals] = metrics.pipelineTotals();
    expect(totals).toMatchObject({ count: 10, errors: 7 });
    expect(totals!.buckets.at(-1)).toBe(10);
  });

  it('stays exact over many requests with scrapes in flight between them', async () => {
    const releases: Array<() => void> = [];
    const metrics = new ServerMetrics({
      ...sources,
      // A scrape waits here (as for the log store's size) while requests go on being recorded.
      logBytes: () => new Promise<number>((resolve) => releases.push(() => resolve(0))),
    });
    open.push(metrics);
    const pipelines = ['a', 'b', 'c'];
    const expected = new Map<string, number>();
    let served = 0;
    const scrapes: Promise<string>[] = [];
    for (let i = 0; i < 30_000; i++) {
      const pipeline = pipelines[(i * 7) % 3]!;
      const status = i % 97 === 0 ? 500 : 200;
      metrics.rowsInferred(1, pipeline, 2);
      metrics.inferenceServed(1, pipeline, status, (i % 50) / 10_000);
      served++;
      const key = `${pipeline} ${status}`;
      expected.set(key, (expected.get(key) ?? 0) + 1);
      // A scrape starts, 2 500 more requests are recorded while it waits, then it finishes.
      if (i % 5_000 === 2_500) scrapes.push(metrics.render());
      if (i % 5_000 === 4_999) {
        for (const release of releases.splice(0)) release();
        await new Promise((resolve) => setImmediate(resolve));
      }
    }
    const last = metrics.render();
    for (const release of releases.splice(0)) release();
    const texts = await Promise.all([...scrapes, last]);
    expect(texts).toHaveLength(7);
    // Each scrape is one consistent reading: answers by status add up to its latency count.
    for (const text of texts) {
      const s = samples(text);
      for (const p of pipelines) {
        const labels = `workspace="1",pipeline="${p}"`;
        const byStatus =
          (s.get(`quoll_inference_requests_total{${labels},status="200"}`) ?? 0) +
          (s.get(`quoll_inference_requests_total{${labels},status="500"}`) ?? 0);
        expect(byStatus).toBe(s.get(`quoll_inference_request_duration_seconds_count{${labels}}`));
        expect(s.get(`quoll_inference_rows_total{${labels}}`)).toBe(2 * byStatus);
        expect(s.get(`quoll_inference_request_duration_seconds_bucket{le="+Inf",${labels}}`)).toBe(byStatus);
      }
    }
    const final = samples(texts.at(-1)!);
    let total = 0;
    for (const [key, count] of expected) {
      const [pipeline, status] = key.split(' ');
      expect(
        final.get(`quoll_inference_requests_total{workspace="1",pipeline="${pipeline}",status="${status}"}`),
      ).toBe(count);
      total += count;
    }
    expect(total).toBe(served);
    expect(metrics.pipelineTotals().reduce((sum, t) => sum + t.count, 0)).toBe(served);
  });
});
