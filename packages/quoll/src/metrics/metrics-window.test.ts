import { describe, expect, it } from 'vitest';
import { ManualClock } from '../clock/index.js';
import { MetricsWindow, quantileMs } from './metrics-window.js';
import { LATENCY_BUCKETS, ServerMetrics } from './server-metrics.js';

const sources = {
  queueDepths: () => [{ workspaceId: 3, name: 'p', queued: 2 }],
  logQueuedRows: () => 7,
  logBytes: () => Promise.resolve(1234),
  logState: () => 'open',
};

describe('ServerMetrics', () => {
  it('starts the event-loop lag monitor and the GC observer at the first scrape, not before', async () => {
    const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
    const lagMean = (text: string): string | undefined =>
      /^nodejs_eventloop_lag_mean_seconds (\S+)$/m.exec(text)?.[1];
    const metrics = new ServerMetrics(sources);
    metrics.inferenceServed(3, 'p', 200, 0.003);
    await sleep(250);
    const first = await metrics.render();
    // Nothing sampled before the first scrape: the lag families are there, with nothing recorded.
    expect(lagMean(first)).toBe('NaN');
    expect(first).toMatch(/^process_resident_memory_bytes \d+/m);
    expect(first).toMatch(/^process_cpu_user_seconds_total \d/m);
    await sleep(250); // two or more firings of the 100 ms timer
    const second = await metrics.render();
    expect(Number(lagMean(second))).toBeGreaterThan(0.09);
    // Each family once.
    expect(second.match(/^# TYPE process_resident_memory_bytes /gm)).toHaveLength(1);
    expect(second).toContain('quoll_inference_requests_total{workspace="3",pipeline="p",status="200"} 1');
    metrics.close();
  });

  it('close() stops the event-loop lag timer, and a scrape after it starts none again', async () => {
    const lagMean = (text: string): string | undefined =>
      /^nodejs_eventloop_lag_mean_seconds (\S+)$/m.exec(text)?.[1];
    const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
    const metrics = new ServerMetrics(sources);
    await metrics.render();
    await sleep(250); // two or more firings of the 100 ms timer
    expect(Number(lagMean(await metrics.render()))).toBeGreaterThan(0.09);
    metrics.close();
    await sleep(250);
    expect(lagMean(await metrics.render())).toBe('NaN');
    // Closed before its first scrape: no timer is ever started.
    const unscraped = new ServerMetrics(sources);
    unscraped.close();
    await unscraped.render();
    await sleep(250);
    expect(lagMean(await unscraped.render())).toBeUndefined();
  });

  it("keeps every one of prom-client's default process metrics, with its type", async () => {
    const families = (text: string): string[] =>
      [...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => `${m[1]} ${m[2]}`).sort();
    // What prom-client 15.1.3's collectDefaultMetrics() registered on Linux, when Quoll used it
    // (ProcessMetrics writes the same families since; dashboards and alerts are built on them).
    const expected = [
      'nodejs_active_handles gauge',
      'nodejs_active_handles_total gauge',
      'nodejs_active_requests gauge',
      'nodejs_active_requests_total gauge',
      'nodejs_active_resources gauge',
      'nodejs_active_resources_total gauge',
      'nodejs_eventloop_lag_max_seconds gauge',
      'nodejs_eventloop_lag_mean_seconds gauge',
      'nodejs_eventloop_lag_min_seconds gauge',
      'nodejs_eventloop_lag_p50_seconds gauge',
      'nodejs_eventloop_lag_p90_seconds gauge',
      'nodejs_eventloop_lag_p99_seconds gauge',
      'nodejs_eventloop_lag_seconds gauge',
      'nodejs_eventloop_lag_stddev_seconds gauge',
      'nodejs_external_memory_bytes gauge',
      'nodejs_gc_duration_seconds histogram',
      'nodejs_heap_size_total_bytes gauge',
      'nodejs_heap_size_used_bytes gauge',
      'nodejs_heap_space_size_available_bytes gauge',
      'nodejs_heap_space_size_total_bytes gauge',
      'nodejs_heap_space_size_used_bytes gauge',
      'nodejs_version_info gauge',
      'process_cpu_seconds_total counter',
      'process_cpu_system_seconds_total counter',
      'process_cpu_user_seconds_total counter',
      'process_heap_bytes gauge',
      'process_max_fds gauge',
      'process_open_fds gauge',
      'process_resident_memory_bytes gauge',
      'process_start_time_seconds gauge',
      'process_virtual_memory_bytes gauge',
    ];
    const metrics = new ServerMetrics(sources);
    const ours = families(await metrics.render());
    metrics.close();
    expect(ours.filter((f) => !f.startsWith('quoll_'))).toEqual(expected);
    // Each family's help and type lines once, right before its samples.
    const text = await metrics.render();
    for (const f of ours) {
      const name = f.split(' ')[0]!;
      expect(text.match(new RegExp(`^# HELP ${name} `, 'gm'))).toHaveLength(1);
      expect(text).toMatch(new RegExp(`^# HELP ${name} .+\\n# TYPE ${name} `, 'm'));
    }
  });

  it('renders every family in the Prometheus text format with the recorded values', async () => {
    const metrics = new ServerMetrics(sources);
    metrics.inferenceServed(3, 'p', 200, 0.003);
    metrics.inferenceServed(3, 'p', 200, 0.004);
    metrics.inferenceServed(3, 'p', 400, 0.001);
    metrics.rowsInferred(3, 'p', 1000);
    metrics.batch(1000);
    metrics.runStarted();
    metrics.runStarted();
    metrics.runFinished('success', true);
    metrics.runFinished('killed', false);
    metrics.tickFired(20);
    const text = await metrics.render();
    expect(metrics.contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(text).toContain('quoll_inference_requests_total{workspace="3",pipeline="p",status="200"} 2');
    expect(text).toContain('quoll_inference_requests_total{workspace="3",pipeline="p",status="400"} 1');
    expect(text).toContain('quoll_inference_request_duration_seconds_count{workspace="3",pipeline="p"} 3');
    expect(text).toContain(
      'quoll_inference_request_duration_seconds_bucket{le="0.005",workspace="3",pipeline="p"} 3',
    );
    expect(text).toContain('quoll_inference_rows_total{workspace="3",pipeline="p"} 1000');
    expect(text).toContain('quoll_inference_batch_rows_bucket{le="1024"} 1');
    expect(text).toContain('quoll_inference_queue_depth{workspace="3",pipeline="p"} 2');
    expect(text).toContain('quoll_inference_log_queue_rows 7');
    expect(text).toContain('quoll_inference_log_bytes 1234');
    expect(text).toContain('quoll_inference_log_writer_up 1');
    expect(text).toContain('quoll_task_runs_total{status="success"} 1');
    expect(text).toContain('quoll_task_runs_total{status="killed"} 1');
    // Two started, one of them ended; the killed one never reached the runner.
    expect(text).toContain('quoll_task_runs_running 1');
    expect(text).toContain('quoll_scheduler_lag_seconds_bucket{le="0.05"} 1');
    expect(text).toMatch(/^process_cpu_user_seconds_total \d/m);
    expect(text).toMatch(/^nodejs_heap_size_used_bytes \d/m);
  });
});

describe('ServerMetrics per-request numbers', () => {
  it('keeps buckets, sums and counts exactly as the text shows them; escapes label values; skips a non-finite time', async () => {
    const metrics = new ServerMetrics(sources);
    const name = 'we"ird\\name';
    // On a bucket's upper bound counts in that bucket (Prometheus' le is ≤).
    metrics.inferenceServed(1, name, 200, 0.001);
    metrics.inferenceServed(1, name, 200, 0.0011);
    metrics.inferenceServed(1, name, 503, 99);
    metrics.inferenceServed(1, name, 200, Number.NaN);
    metrics.rowsInferred(1, name, 5);
    metrics.batch(3);
    metrics.batch(20_000);
    const text = await metrics.render();
    const labels = 'workspace="1",pipeline="we\\"ird\\\\name"';
    expect(text).toContain(`quoll_inference_requests_total{${labels},status="200"} 2`);
    expect(text).toContain(`quoll_inference_requests_total{${labels},status="503"} 1`);
    expect(text).toContain(`quoll_inference_request_duration_seconds_bucket{le="0.0005",${labels}} 0`);
    expect(text).toContain(`quoll_inference_request_duration_seconds_bucket{le="0.001",${labels}} 1`);
    expect(text).toContain(`quoll_inference_request_duration_seconds_bucket{le="0.0025",${labels}} 2`);
    expect(text).toContain(`quoll_inference_request_duration_seconds_bucket{le="10",${labels}} 2`);
    expect(text).toContain(`quoll_inference_request_duration_seconds_bucket{le="+Inf",${labels}} 3`);
    expect(text).toContain(`quoll_inference_request_duration_seconds_sum{${labels}} ${0.001 + 0.0011 + 99}`);
    expect(text).toContain(`quoll_inference_request_duration_seconds_count{${labels}} 3`);
    expect(text).toContain(`quoll_inference_rows_total{${labels}} 5`);
    expect(text).toContain('quoll_inference_batch_rows_bucket{le="4"} 1');
    expect(text).toContain('quoll_inference_batch_rows_bucket{le="16384"} 1');
    expect(text).toContain('quoll_inference_batch_rows_bucket{le="+Inf"} 2');
    expect(text).toContain('quoll_inference_batch_rows_sum 20003');
    expect(text).toContain('# TYPE quoll_inference_request_duration_seconds histogram');
    expect(metrics.pipelineTotals()).toEqual([
      {
        workspaceId: 1,
        pipeline: name,
        count: 3,
        rows: 5,
        errors: 1,
        buckets: [0, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 3],
      },
    ]);
  });
});

describe('quantileMs', () => {
  it('interpolates inside the bucket that holds the rank and is null without requests', () => {
    const bounds = [0.001, 0.01, 0.1];
    // 10 requests ≤ 1 ms, 10 more ≤ 10 ms, none above; cumulative, +Inf last.
    expect(quantileMs(bounds, [10, 20, 20, 20], 0.5)).toBeCloseTo(1, 6);
    expect(quantileMs(bounds, [10, 20, 20, 20], 0.75)).toBeCloseTo(5.5, 6);
    expect(quantileMs(bounds, [0, 0, 0, 4], 0.99)).toBeCloseTo(100, 6);
    expect(quantileMs(bounds, [0, 0, 0, 0], 0.5)).toBeNull();
  });
});

describe('MetricsWindow', () => {
  it('turns the totals of each interval into rates and quantiles, keeps `size` samples, and stop() leaves no timer', async () => {
    const clock = new ManualClock(Date.UTC(2026, 0, 1));
    const metrics = new ServerMetrics(sources);
    const window = new MetricsWindow(metrics, { clock, intervalMs: 1000, size: 2 });
    // Totals before start are not part of the first interval.
    metrics.inferenceServed(3, 'p', 200, 0.5);
    window.start();
    await clock.advance(0);
    for (let i = 0; i < 10; i++) metrics.inferenceServed(3, 'p', 200, 0.002);
    metrics.inferenceServed(3, 'p', 500, 0.002);
    metrics.inferenceServed(0, '', 404, 0.001);
    metrics.rowsInferred(3, 'p', 50);
    await clock.advance(1000);
    const [first] = window.samples();
    expect(first?.pipelines).toMatchObject([
      {
        workspaceId: 3,
        pipeline: 'p',
        requestsPerSecond: 11,
        rowsPerSecond: 50,
        errors: 1,
      },
    ]);
    expect(first!.pipelines[0]!.p50Ms!).toBeGreaterThan(1);
    expect(first!.pipelines[0]!.p99Ms!).toBeLessThanOrEqual(LATENCY_BUCKETS[2]! * 1000);
    await clock.advance(1000);
    await clock.advance(1000);
    expect(window.samples()).toHaveLength(2);
    expect(window.samples()[1]?.pipelines[0]).toMatchObject({ requestsPerSecond: 0, p50Ms: null });
    expect(window.running).toBe(true);
    await window.stop();
    expect(window.running).toBe(false);
    expect(clock.pendingTimers).toBe(0);
  });
});
