// Loaded into a Quoll server by `bench/idle-probe.ts` (node --import): counts the HTTP thread's
// garbage collections by kind (PerformanceObserver) and, on each SIGUSR2, prints one line to
// stderr: `IDLEPROBE {...}` with those counts, the young and old generations' sizes
// (v8.getHeapSpaceStatistics) and the process's RSS. Nothing runs between signals.
import { getHeapSpaceStatistics } from 'node:v8';
import { PerformanceObserver, constants } from 'node:perf_hooks';

const counts = { minor: 0, major: 0, incremental: 0, weak: 0, minorMs: 0, majorMs: 0 };
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    const kind = e.detail?.kind ?? 0;
    if (kind === constants.NODE_PERFORMANCE_GC_MINOR) {
      counts.minor++;
      counts.minorMs += e.duration;
    } else if (kind === constants.NODE_PERFORMANCE_GC_MAJOR) {
      counts.major++;
      counts.majorMs += e.duration;
    } else if (kind === constants.NODE_PERFORMANCE_GC_INCREMENTAL) counts.incremental++;
    else counts.weak++;
  }
}).observe({ entryTypes: ['gc'] });
process.on('SIGUSR2', () => {
  const spaces = Object.fromEntries(
    getHeapSpaceStatistics().map((s) => [s.space_name, { size: s.space_size, used: s.space_used_size }]),
  );
  process.stderr.write(
    `IDLEPROBE ${JSON.stringify({
      ...counts,
      newSpace: spaces.new_space?.size ?? NaN,
      newUsed: spaces.new_space?.used ?? NaN,
      oldSpace: spaces.old_space?.size ?? NaN,
      rss: process.memoryUsage.rss(),
    })}\n`,
  );
});
