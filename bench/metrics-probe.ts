// Probe of where a metrics server's extra CPU goes (not a benchmark: no target, one pair, no A/A
// unless asked for one): two Quoll servers of this build pinned to core 0, b started first then
// a, loaded at the same time by wrk on core 1 (JSON batch 1 x 16 connections each), both under
// --trace-gc (and --trace-deopt with PROBE_DEOPT=1). Per measured window and in total: requests/s,
// CPU per request of the main (HTTP) thread and of the other threads (schedstat), each thread's
// share, scavenges per 1000 requests (per isolate) with their summed pause per request, and the
// deopt lines; each server's trace output is left in /tmp/metrics-probe-<a|b>.log.
// Usage: npx tsx bench/metrics-probe.ts
// Env: PROBE_A_ARGS (default "": metrics on), PROBE_B_ARGS (default --no-metrics; both
// --no-metrics = an A/A that sizes the start-order effect), PROBE_A_CLI / PROBE_B_CLI (another
// build's dist/cli/main.js, e.g. a copy with one thing switched off), PROBE_ROUNDS (4),
// PROBE_SECONDS (5), PROBE_WARMUP_S (10), PROBE_SCRAPE_S (0 = a is never scraped),
// PROBE_A_ENV / PROBE_B_ENV ("K=V K=V": e.g. QUOLL_METRICS=yes and QUOLL_METRICS=off give both
// servers the same command line and environment size), PROBE_WRK_B_FIRST=1 (start b's wrk first).
// PROBE_NODE_ARGS (more flags for node in both servers, e.g. --trace-pretenuring).
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  deployModel,
  loadAverage,
  startQuoll,
  startScraper,
  stopAll,
  wrkAsync,
  writeBenchModel,
  writeLua,
  type BenchServer,
} from './support.js';

const flags = (v: string | undefined, d: string): string[] => (v ?? d).split(' ').filter(Boolean);
const ROUNDS = Number(process.env.PROBE_ROUNDS ?? 4);
const SECONDS = Number(process.env.PROBE_SECONDS ?? 5);
const WARMUP = Number(process.env.PROBE_WARMUP_S ?? 10);
const SCRAPE = Number(process.env.PROBE_SCRAPE_S ?? 0);
const work = mkdtempSync(join(tmpdir(), 'quoll-metrics-probe-'));
const modelPath = writeBenchModel(work);
const nodeArgs = [
  '--trace-gc',
  ...(process.env.PROBE_DEOPT ? ['--trace-deopt'] : []),
  ...(process.env.PROBE_NODE_ARGS ?? '').split(' ').filter(Boolean),
];

interface Side {
  name: string;
  server: BenchServer;
  url: string;
  lua: string;
  out: string[];
}
const envOf = (v: string | undefined): NodeJS.ProcessEnv =>
  Object.fromEntries(
    (v ?? '')
      .split(' ')
      .filter(Boolean)
      .map((kv) => kv.split('=', 2) as [string, string]),
  );
async function side(name: string, extra: string[], cli?: string, env?: string): Promise<Side> {
  const server = await startQuoll(work, name, extra, { nodeArgs, env: envOf(env), ...(cli ? { cli } : {}) });
  const out: string[] = [];
  let partial = '';
  server.proc.stdout!.on('data', (d: Buffer) => {
    const lines = (partial + d.toString()).split('\n');
    partial = lines.pop() ?? '';
    out.push(...lines);
  });
  const pipeline = await deployModel(server.client, 'benchmodel', modelPath, 'benchpipe');
  return {
    name,
    server,
    url: pipeline.url(),
    lua: writeLua(work, { format: 'json', batch: 1, token: server.token, tag: name }),
    out,
  };
}

function threads(pid: number): Map<string, number> {
  const m = new Map<string, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      m.set(tid, Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]));
    } catch {
      // ended
    }
  }
  return m;
}

const loadBefore = loadAverage();
const b = await side(
  'b',
  flags(process.env.PROBE_B_ARGS, '--no-metrics'),
  process.env.PROBE_B_CLI,
  process.env.PROBE_B_ENV,
);
const a = await side(
  'a',
  flags(process.env.PROBE_A_ARGS, ''),
  process.env.PROBE_A_CLI,
  process.env.PROBE_A_ENV,
);
const sides = process.env.PROBE_WRK_B_FIRST ? [b, a] : [a, b];
const scraper = SCRAPE > 0 ? startScraper(a.server.url, a.server.token, SCRAPE) : null;
const load = (s: number) =>
  Promise.all(sides.map((x) => wrkAsync({ url: x.url, luaScript: x.lua, connections: 16, seconds: s })));
await load(WARMUP);
const rows: string[] = [];
const agg = new Map<
  string,
  { req: number; main: number; rest: number; scav: number; mc: number; pause: number; deopt: number }
>();
for (let r = 0; r < ROUNDS; r++) {
  const marks = sides.map((s) => s.out.length);
  const before = sides.map((s) => threads(s.server.proc.pid!));
  const got = await load(SECONDS);
  const after = sides.map((s) => threads(s.server.proc.pid!));
  sides.forEach((s, i) => {
    const req = got[i]!.reqPerSec * SECONDS;
    const pid = String(s.server.proc.pid);
    let main = 0;
    let rest = 0;
    for (const [tid, ns] of after[i]!) {
      const d = ns - (before[i]!.get(tid) ?? 0);
      if (tid === pid) main += d;
      else rest += d;
    }
    const lines = s.out.slice(marks[i]);
    let scav = 0;
    let mc = 0;
    let pause = 0;
    let deopt = 0;
    for (const l of lines) {
      if (/Scavenge/.test(l)) scav++;
      else if (/Mark-Compact|Mark-sweep/i.test(l)) mc++;
      if (/deoptimiz|bailout/i.test(l)) deopt++;
      const p = /MB, ([\d.]+) \/ ([\d.]+) ms/.exec(l);
      if (p) pause += Number(p[1]);
    }
    const per = [...after[i]!]
      .map(
        ([tid, ns]) => [tid === pid ? 'main' : tid, (ns - (before[i]!.get(tid) ?? 0)) / req / 1000] as const,
      )
      .filter(([, v]) => v > 0.5)
      .sort((x, y) => y[1] - x[1]);
    const iso = new Map<string, number>();
    for (const l of lines) {
      const m = /^\[\d+:(0x[0-9a-f]+)\].*Scavenge/.exec(l);
      if (m) iso.set(m[1]!, (iso.get(m[1]!) ?? 0) + 1);
    }
    rows.push(
      `   ${s.name} threads ${per.map(([t, v]) => `${t}:${v.toFixed(1)}`).join(' ')} isolates-scav ${[...iso.values()].join(',')}`,
    );
    const g = agg.get(s.name) ?? { req: 0, main: 0, rest: 0, scav: 0, mc: 0, pause: 0, deopt: 0 };
    g.req += req;
    g.main += main;
    g.rest += rest;
    g.scav += scav;
    g.mc += mc;
    g.pause += pause;
    g.deopt += deopt;
    agg.set(s.name, g);
    rows.push(
      `round ${r} ${s.name}: rps ${got[i]!.reqPerSec.toFixed(0)} main ${(main / req / 1000).toFixed(1)} µs/req rest ${(rest / req / 1000).toFixed(1)} scav/1k ${((scav / req) * 1000).toFixed(2)} mc ${mc} gc-pause ${((pause * 1000) / req).toFixed(2)} µs/req deopt ${deopt}`,
    );
  });
}
const scraped = (await scraper?.stop()) ?? '';
await stopAll(sides.map((s) => s.server.proc));
for (const r of rows) console.log(r);
for (const [name, g] of agg)
  console.log(
    `TOTAL ${name}: req ${g.req.toFixed(0)} main ${(g.main / g.req / 1000).toFixed(1)} rest ${(g.rest / g.req / 1000).toFixed(1)} µs/req scav/1k ${((g.scav / g.req) * 1000).toFixed(2)} mc ${g.mc} gc-pause ${((g.pause * 1000) / g.req).toFixed(2)} µs/req deopt ${g.deopt}`,
  );
console.log(`load ${loadBefore} → ${loadAverage()} ${scraped}`);
for (const s of sides) {
  console.log(`--- ${s.name} last gc lines`);
  for (const l of s.out.filter((l) => /Scavenge|Mark/.test(l)).slice(-4)) console.log(l.slice(0, 300));
}
if (process.env.PROBE_DEOPT) {
  for (const s of sides) {
    const d = s.out.filter((l) => /deoptimiz|bailout/i.test(l));
    console.log(`--- ${s.name} last deopts (${d.length} total)`);
    for (const l of d.slice(-15)) console.log(l.slice(0, 300));
  }
}
for (const s of sides) writeFileSync(`/tmp/metrics-probe-${s.name}.log`, s.out.join('\n'));
rmSync(work, { recursive: true, force: true });
