// What one scrape of /metrics costs the server, measured from outside: a Quoll server pinned
// to one core, a few inference requests so the pipeline series exist, then PROBE_SCRAPES
// (default 400) scrapes one after the other over one keep-alive connection; the server's CPU
// (main thread, i.e. the HTTP thread, and all threads) per scrape from /proc/<pid>/task/*/schedstat.
// Then the same number of `GET /v1/health` for comparison (a cheap request on the same path).
// Env: PROBE_SCRAPES, PROBE_CORE (default 0), PROBE_CLI (another build's dist/cli/main.js).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  deployModel,
  mainThreadCpuNs,
  median,
  startQuoll,
  stopAll,
  threadCpuNs,
  writeBenchModel,
} from './support.js';

const N = Number(process.env.PROBE_SCRAPES ?? 400);
const work = mkdtempSync(join(tmpdir(), 'quoll-scrape-probe-'));
const server = await startQuoll(work, 's', [], {
  cores: process.env.PROBE_CORE ?? '0',
  ...(process.env.PROBE_CLI ? { cli: process.env.PROBE_CLI } : {}),
});
try {
  const pipeline = await deployModel(server.client, 'm', writeBenchModel(work), 'p');
  for (let i = 0; i < 50; i++) {
    await fetch(pipeline.url(), {
      method: 'POST',
      headers: { authorization: `Bearer ${server.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ rows: [{ tensor: Array.from({ length: 18 }, () => Math.random()) }] }),
    }).then((r) => r.arrayBuffer());
  }
  const pid = server.proc.pid!;
  const headers = { authorization: `Bearer ${server.token}` };
  let bytes = 0;
  const measure = async (path: string): Promise<{ mainUs: number; allUs: number }> => {
    const main0 = mainThreadCpuNs(pid);
    const all0 = threadCpuNs(pid);
    for (let i = 0; i < N; i++) bytes = (await (await fetch(server.url + path, { headers })).text()).length;
    return { mainUs: (mainThreadCpuNs(pid) - main0) / N / 1000, allUs: (threadCpuNs(pid) - all0) / N / 1000 };
  };
  const rounds: Record<string, { mainUs: number; allUs: number }[]> = { metrics: [], health: [] };
  await measure('/metrics'); // warm-up
  await measure('/v1/health');
  for (let r = 0; r < 3; r++) {
    rounds.metrics!.push(await measure('/metrics'));
    rounds.health!.push(await measure('/v1/health'));
  }
  for (const [k, xs] of Object.entries(rounds))
    console.log(
      `${k}: main ${median(xs.map((x) => x.mainUs)).toFixed(0)} µs, all threads ${median(xs.map((x) => x.allUs)).toFixed(0)} µs per request (${xs.map((x) => x.mainUs.toFixed(0)).join(', ')})`,
    );
  console.log(`scrape bytes ${bytes}`);
} finally {
  await stopAll([server.proc]);
  rmSync(work, { recursive: true, force: true });
}
