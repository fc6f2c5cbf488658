// Loaded into a Quoll server by `bench/external-memory-probe.ts` (node --import): while recording
// (SIGUSR2 toggles it), samples the HTTP thread's isolate's external memory (ArrayBuffer backing
// stores and what else V8 is told of) every 5 ms and notes its garbage collections; at exit,
// writes to EXTERNAL_PROBE_OUT the bytes it grew by and the bytes it shrank by in the intervals
// with a mark-compact and in those with only scavenges (what survives to the old generation is
// given back only by a mark-compact, and V8 starts one when external memory has grown 64 MiB).
import { writeFileSync } from 'node:fs';
import { PerformanceObserver, constants, performance } from 'node:perf_hooks';
import v8 from 'node:v8';

const out = process.env.EXTERNAL_PROBE_OUT;
let recording = false;
let timer = null;
const samples = [];
const gcs = [];
process.on('SIGUSR2', () => {
  recording = !recording;
  if (recording)
    timer = setInterval(() => samples.push([performance.now(), v8.getHeapStatistics().external_memory]), 5);
  else clearInterval(timer);
});
new PerformanceObserver((list) => {
  if (recording) for (const e of list.getEntries()) gcs.push([e.startTime, e.detail?.kind]);
}).observe({ entryTypes: ['gc'] });
process.on('exit', () => {
  if (!out) return;
  let grew = 0;
  let freedByMarkCompacts = 0;
  let freedByScavenges = 0;
  for (let i = 1; i < samples.length; i++) {
    const [t0, a] = samples[i - 1];
    const [t1, b] = samples[i];
    if (b >= a) {
      grew += b - a;
      continue;
    }
    const major = gcs.some(([t, kind]) => t >= t0 && t <= t1 && kind === constants.NODE_PERFORMANCE_GC_MAJOR);
    if (major) freedByMarkCompacts += a - b;
    else freedByScavenges += a - b;
  }
  const markCompacts = gcs.filter(([, kind]) => kind === constants.NODE_PERFORMANCE_GC_MAJOR).length;
  const values = samples.map((s) => s[1]);
  writeFileSync(
    out,
    JSON.stringify({
      grew,
      freedByMarkCompacts,
      freedByScavenges,
      markCompacts,
      gcs: gcs.length,
      min: Math.min(...values),
      max: Math.max(...values),
    }),
  );
});
