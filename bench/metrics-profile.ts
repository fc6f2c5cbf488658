// Where the metrics server's extra CPU per request goes: two Quoll servers of this build, one
// keeping metrics (scraped on /metrics every BENCH_SCRAPE_S seconds by a separate process) and
// one with --no-metrics, both under `node --cpu-prof` (one profile per thread), both pinned to
// core 0 and loaded AT THE SAME TIME by wrk on core 1 (as in bench/metrics.bench.ts). Then the
// main thread's profile of each is summed by self time per function, per request, and the
// functions whose time differs most between the two are listed (on − off, µs per request).
// Usage: npx tsx bench/metrics-profile.ts [connections=16] [seconds=10]
// Env: BENCH_SCRAPE_S (default 1; 0 = no scraper), PROFILE_WARMUP_S (default 8),
// PROFILE_FORMAT (json | arrow, default json), PROFILE_BATCH (default 1), PROFILE_KEEP=1,
// BENCH_ON_ARGS / BENCH_OFF_ARGS (extra flags of each server; e.g. BENCH_OFF_ARGS= for an A/A).
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  deployModel,
  loadAverage,
  printTable,
  startQuoll,
  startScraper,
  stopAll,
  threadCpuNs,
  wrkAsync,
  writeBenchModel,
  writeLua,
  type BenchServer,
} from './support.js';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

const [connections = 16, seconds = 10] = process.argv.slice(2).map(Number);
const warmup = Number(process.env.PROFILE_WARMUP_S ?? 8);
const scrapeS = Number(process.env.BENCH_SCRAPE_S ?? 1);
const format = process.env.PROFILE_FORMAT === 'arrow' ? 'arrow' : 'json';
const batch = Number(process.env.PROFILE_BATCH ?? 1);
const flags = (v: string | undefined, d: string): string[] => (v ?? d).split(' ').filter(Boolean);
const work = mkdtempSync(join(tmpdir(), 'quoll-metrics-profile-'));
const modelPath = writeBenchModel(work);

interface Side {
  name: 'on' | 'off';
  server: BenchServer;
  url: string;
  lua: string;
  profiles: string;
}
async function side(name: Side['name'], extra: string[]): Promise<Side> {
  const profiles = join(work, `profiles-${name}`);
  const server = await startQuoll(work, name, extra, {
    nodeArgs: ['--cpu-prof', '--cpu-prof-dir', profiles],
  });
  const pipeline = await deployModel(server.client, 'benchmodel', modelPath, 'benchpipe');
  const lua = writeLua(work, { format, batch, token: server.token, tag: name });
  return { name, server, url: pipeline.url(), lua, profiles };
}

const loadBefore = loadAverage();
const off = await side('off', flags(process.env.BENCH_OFF_ARGS, '--no-metrics'));
const on = await side('on', flags(process.env.BENCH_ON_ARGS, ''));
const sides = [on, off];
const scraper = scrapeS <= 0 ? null : startScraper(on.server.url, on.server.token, scrapeS);

const load = (s: number) =>
  Promise.all(sides.map((x) => wrkAsync({ url: x.url, luaScript: x.lua, connections, seconds: s })));
await load(warmup);
const cpuBefore = sides.map((s) => threadCpuNs(s.server.proc.pid!));
const from = Number(process.hrtime.bigint() / 1000n);
const runs = await load(seconds);
const to = Number(process.hrtime.bigint() / 1000n);
const cpuAfter = sides.map((s) => threadCpuNs(s.server.proc.pid!));
const scraped = (await scraper?.stop()) ?? '';
await stopAll(sides.map((s) => s.server.proc));
const loadAfter = loadAverage();

/** Self time (µs) per function of the thread whose profile holds the most busy time. */
function mainThread(dir: string): Map<string, number> {
  let best = new Map<string, number>();
  let bestBusy = -1;
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'))) {
    const profile = JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile;
    const byId = new Map(profile.nodes.map((n) => [n.id, n]));
    const fns = new Map<string, number>();
    let at = profile.startTime;
    let busy = 0;
    profile.samples.forEach((id, i) => {
      const delta = profile.timeDeltas[i] ?? 0;
      at += delta;
      if (at < from || at > to) return;
      const f = byId.get(id)!.callFrame;
      const key = `${f.functionName || '(anonymous)'} ${f.url.replace(/^.*\/(node_modules|dist)\//, '')}:${f.lineNumber + 1}`;
      fns.set(key, (fns.get(key) ?? 0) + delta);
      if (f.functionName !== '(idle)') busy += delta;
    });
    if (busy > bestBusy) {
      bestBusy = busy;
      best = fns;
    }
  }
  return best;
}

const requests = runs.map((r) => r.reqPerSec * seconds);
console.log(
  `${format} batch ${batch}, ${connections} connections per server, ${seconds} s after ${warmup} s warm-up; scraper ${scraper === null ? 'none' : `every ${scrapeS}s ${scraped}`}; load ${loadBefore} → ${loadAfter}`,
);
printTable(
  ['server', 'req/s', 'CPU µs/request (all threads)'],
  sides.map((s, i) => [s.name, runs[i]!.reqPerSec, (cpuAfter[i]! - cpuBefore[i]!) / 1000 / requests[i]!]),
);
const perRequest = sides.map((s, i) => {
  const m = mainThread(s.profiles);
  return new Map([...m].map(([k, us]): [string, number] => [k, us / requests[i]!]));
});
const [pOn, pOff] = perRequest as [Map<string, number>, Map<string, number>];
const busy = (m: Map<string, number>): number =>
  [...m].filter(([k]) => !k.startsWith('(idle)')).reduce((a, [, v]) => a + v, 0);
console.log(`main thread, sampled busy µs/request: on ${busy(pOn).toFixed(1)}, off ${busy(pOff).toFixed(1)}`);
const keys = new Set([...pOn.keys(), ...pOff.keys()]);
const diff = [...keys]
  .filter((k) => !k.startsWith('(idle)'))
  .map((k): [string, number, number, number] => [
    k.slice(0, 90),
    pOn.get(k) ?? 0,
    pOff.get(k) ?? 0,
    (pOn.get(k) ?? 0) - (pOff.get(k) ?? 0),
  ]);
printTable(
  ['function (self time, main thread)', 'on µs/req', 'off µs/req', 'on − off'],
  [...diff].sort((a, b) => b[3] - a[3]).slice(0, 25),
);
printTable(
  ['function (self time, main thread)', 'on µs/req', 'off µs/req', 'on − off'],
  [...diff].sort((a, b) => a[3] - b[3]).slice(0, 10),
);
printTable(
  ['function (self time, main thread)', 'on µs/req', 'off µs/req', 'on − off'],
  [...diff].sort((a, b) => b[1] + b[2] - a[1] - a[2]).slice(0, 25),
);
if (process.env.PROFILE_KEEP === '1') console.log(`profiles kept in ${work}`);
else rmSync(work, { recursive: true, force: true });
