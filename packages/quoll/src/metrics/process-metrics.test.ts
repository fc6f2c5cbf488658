import { closeSync, openSync, readFileSync, readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ProcessMetrics } from './process-metrics.js';

/** Sample lines of the text by series (`name{labels}`), as numbers. */
function samples(text: string): Map<string, number> {
  const values = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    values.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return values;
}

const linux = process.platform === 'linux';

describe('ProcessMetrics', () => {
  it('reads CPU, memory and heap as Node and /proc report them', () => {
    const metrics = new ProcessMetrics(100);
    const cpuBefore = process.cpuUsage();
    const values = samples(metrics.text());
    const cpuAfter = process.cpuUsage();
    // The process's CPU since it started, not since the first scrape.
    const user = values.get('process_cpu_user_seconds_total')!;
    expect(user).toBeGreaterThanOrEqual(cpuBefore.user / 1e6);
    expect(user).toBeLessThanOrEqual(cpuAfter.user / 1e6);
    expect(values.get('process_cpu_seconds_total')).toBeCloseTo(
      user + values.get('process_cpu_system_seconds_total')!,
      9,
    );
    expect(values.get('process_start_time_seconds')).toBeCloseTo(Date.now() / 1000 - process.uptime(), -1);
    expect(values.get('nodejs_heap_size_used_bytes')).toBeGreaterThan(1e6);
    expect(values.get('nodejs_heap_size_total_bytes')).toBeGreaterThanOrEqual(
      values.get('nodejs_heap_size_used_bytes')!,
    );
    expect(values.get('nodejs_heap_space_size_used_bytes{space="old"}')).toBeGreaterThan(0);
    expect(values.get('nodejs_heap_space_size_total_bytes{space="new"}')).toBeGreaterThan(0);
    const [major, minor, patch] = process.version.slice(1).split('.');
    expect(
      values.get(
        `nodejs_version_info{version="${process.version}",major="${major}",minor="${minor}",patch="${patch}"}`,
      ),
    ).toBe(1);
    const rss = values.get('process_resident_memory_bytes')!;
    expect(rss).toBeGreaterThan(process.memoryUsage.rss() / 2);
    expect(rss).toBeLessThan(process.memoryUsage.rss() * 2);
    if (linux) {
      const status = readFileSync('/proc/self/status', 'utf8');
      const kB = (key: string): number =>
        Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)![1]) * 1024;
      // Sizes move a little between two reads; the data size is mapped memory, not the JS heap.
      expect(values.get('process_virtual_memory_bytes')! / kB('VmSize')).toBeCloseTo(1, 1);
      expect(values.get('process_heap_bytes')! / kB('VmData')).toBeCloseTo(1, 1);
      expect(values.get('process_max_fds')).toBeGreaterThan(0);
    }
  });

  it.runIf(linux)('counts open file descriptors as the listing of /proc/self/fd does', () => {
    const metrics = new ProcessMetrics(100);
    const listed = (): number => readdirSync('/proc/self/fd').length - 1;
    const before = samples(metrics.text()).get('process_open_fds')!;
    expect(before).toBe(listed());
    const fds = Array.from({ length: 5 }, () => openSync('/proc/self/status', 'r'));
    try {
      expect(samples(metrics.text()).get('process_open_fds')).toBe(before + 5);
    } finally {
      for (const fd of fds) closeSync(fd);
    }
    expect(samples(metrics.text()).get('process_open_fds')).toBe(before);
  });

  it('groups active handles and resources by type, with totals', () => {
    const metrics = new ProcessMetrics(100);
    const timeouts = (values: Map<string, number>): number =>
      values.get('nodejs_active_resources{type="Timeout"}') ?? 0;
    const timers = [setTimeout(() => undefined, 10_000), setTimeout(() => undefined, 10_000)];
    const values = samples(metrics.text());
    expect(timeouts(values)).toBeGreaterThanOrEqual(2);
    let byType = 0;
    for (const [series, n] of values) if (series.startsWith('nodejs_active_resources{')) byType += n;
    expect(values.get('nodejs_active_resources_total')).toBe(byType);
    expect(values.get('nodejs_active_handles_total')).toBeGreaterThanOrEqual(0);
    expect(values.get('nodejs_active_requests_total')).toBeGreaterThanOrEqual(0);
    // Counted afresh at each scrape.
    for (const t of timers) clearTimeout(t);
    expect(timeouts(samples(metrics.text()))).toBe(timeouts(values) - 2);
  });

  it('counts GC durations by kind from start() on, and none after close()', async () => {
    const metrics = new ProcessMetrics(100);
    const minorCount = (): number =>
      samples(metrics.text()).get('nodejs_gc_duration_seconds_count{kind="minor"}') ?? 0;
    const churn = async (): Promise<void> => {
      let keep: unknown[] = [];
      for (let i = 0; i < 200_000; i++) {
        keep.push({ i, s: `x${i}` });
        if (keep.length > 1000) keep = [];
      }
      // Node delivers GC entries to observers after the loop turns.
      await new Promise((resolve) => setTimeout(resolve, 50));
    };
    await churn();
    expect(minorCount()).toBe(0);
    metrics.start();
    await churn();
    const counted = minorCount();
    expect(counted).toBeGreaterThan(0);
    const text = metrics.text();
    expect(text).toMatch(/^nodejs_gc_duration_seconds_bucket\{le="\+Inf",kind="minor"\} \d+$/m);
    expect(text).toMatch(/^nodejs_gc_duration_seconds_sum\{kind="minor"\} \d/m);
    metrics.close();
    await churn();
    expect(minorCount()).toBe(counted);
    // Closed, it starts nothing again.
    metrics.start();
    await churn();
    expect(minorCount()).toBe(counted);
  });
});
