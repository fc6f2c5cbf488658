// Loaded into a Quoll server by `bench/heap-sample-probe.ts` (node --import): SIGUSR2 starts V8's
// sampling heap profiler on the HTTP thread's isolate (every object sampled, also those a minor or
// major GC has since collected, so the profile counts what was allocated, not what is still
// alive); the next SIGUSR2 stops it and writes the profile to HEAP_SAMPLE_OUT.
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';

const out = process.env.HEAP_SAMPLE_OUT;
const interval = Number(process.env.HEAP_SAMPLE_INTERVAL ?? 1024);
const session = new Session();
session.connect();
let sampling = false;
process.on('SIGUSR2', () => {
  if (!sampling) {
    sampling = true;
    session.post('HeapProfiler.enable', () =>
      session.post('HeapProfiler.startSampling', {
        samplingInterval: interval,
        includeObjectsCollectedByMinorGC: true,
        includeObjectsCollectedByMajorGC: true,
      }),
    );
    return;
  }
  sampling = false;
  session.post('HeapProfiler.stopSampling', (err, result) => {
    if (out)
      writeFileSync(out, err ? JSON.stringify({ error: String(err) }) : JSON.stringify(result.profile));
  });
});
