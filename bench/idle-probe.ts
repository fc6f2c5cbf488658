// Does a Quoll server that idled longer serve slower afterwards, and why (issue 15, the
// metrics lane's first-started handicap)? One build; per variant, three servers pinned to core 0
// like the benches', each deployed (inline verdict awaited) and then left idle ≈ 0, 12 or 30 s
// before the same load (wrk on core 1, JSON batch 1 × 16 connections by default) in PROBE_WINDOWS
// windows of PROBE_WINDOW_S s. Per window: requests/s, CPU µs per request (all threads, and the
// HTTP thread), the HTTP thread's scavenges and mark-compacts per 1000 requests and its young
// generation's size (from bench/idle-probe-preload.js, read on SIGUSR2). Also each server's RSS
// when idle (before load) and after it.
// Schedule of one variant: start S30, start S12, wait, measure S12, measure S30, start S0 and
// measure it at once: no server starts or takes load while another is measured; the idle
// actually spent is printed. Variants alternate within each rep (PROBE_REPS, default 2).
// PROBE_VARIANTS: `label:node flags[@dist/cli/main.js]` separated by `;` (default `base:`).
// PROBE_FORMAT (json | arrow), PROBE_BATCH (default 1), PROBE_CONNECTIONS (16),
// PROBE_IDLES (default 12,30: the two idled servers; the 0 s one is always measured),
// PROBE_WARMUP_S (default 0): wrk load right after the verdict, before the idle spell;
// PROBE_TRACE=1 adds --trace-gc and writes each server's log to /tmp/idle-probe-<label>-<idle>-<rep>.log.
// Hold /tmp/quoll-bench.lock while it runs.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  awaitInlineVerdict,
  deployModel,
  loadAverage,
  mainThreadCpuNs,
  median,
  printTable,
  startQuoll,
  stopAll,
  threadCpuNs,
  wrk,
  writeBenchModel,
  writeLua,
  writeResults,
  type BenchServer,
} from './support.js';

const PRELOAD = fileURLToPath(new URL('./idle-probe-preload.js', import.meta.url));
const format = process.env.PROBE_FORMAT === 'arrow' ? 'arrow' : 'json';
const batch = Number(process.env.PROBE_BATCH ?? 1);
const connections = Number(process.env.PROBE_CONNECTIONS ?? 16);
const windows = Number(process.env.PROBE_WINDOWS ?? 4);
const windowS = Number(process.env.PROBE_WINDOW_S ?? 3);
const reps = Number(process.env.PROBE_REPS ?? 2);
const [idleMid = 12, idleLong = 30] = (process.env.PROBE_IDLES ?? '12,30').split(',').map(Number);
const trace = process.env.PROBE_TRACE === '1';
const warmupS = Number(process.env.PROBE_WARMUP_S ?? 0);
const variants = (process.env.PROBE_VARIANTS ?? 'base:').split(';').map((v) => {
  const [label, rest = ''] = v.split(/:(.*)/s) as [string, string?];
  const [flags, cli] = rest.split('@') as [string, string?];
  return { label, flags: flags.split(' ').filter(Boolean), cli };
});

interface Snapshot {
  minor: number;
  major: number;
  incremental: number;
  minorMs: number;
  majorMs: number;
  newSpace: number;
  oldSpace: number;
  rss: number;
}

interface Probed {
  server: BenchServer;
  url: string;
  lua: string;
  lines: string[];
  snapshots: Snapshot[];
  readyAt: number;
}

const work = mkdtempSync(join(tmpdir(), 'quoll-idle-probe-'));
const modelPath = writeBenchModel(work);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function start(tag: string, flags: string[], cli: string | undefined): Promise<Probed> {
  const server = await startQuoll(work, tag, [], {
    nodeArgs: ['--import', PRELOAD, ...(trace ? ['--trace-gc'] : []), ...flags],
    ...(cli ? { cli } : {}),
  });
  const lines: string[] = [];
  const snapshots: Snapshot[] = [];
  let partial = '';
  server.proc.stderr?.on('data', (d: Buffer) => {
    const parts = (partial + d.toString()).split('\n');
    partial = parts.pop() ?? '';
    for (const l of parts)
      if (l.startsWith('IDLEPROBE ')) snapshots.push(JSON.parse(l.slice(10)) as Snapshot);
  });
  if (trace) server.proc.stdout?.on('data', (d: Buffer) => lines.push(d.toString()));
  const pipeline = await deployModel(server.client, 'benchmodel', modelPath, 'benchpipe');
  await awaitInlineVerdict(server, tag);
  const lua = writeLua(work, { format, batch, token: server.token, tag });
  // PROBE_WARMUP_S: load before the idle spell, so that the measured windows compare warmed-up
  // code after different idle times (not the JIT's warm-up, which the first window holds otherwise).
  if (warmupS > 0) wrk({ url: pipeline.url(), luaScript: lua, connections, seconds: warmupS });
  return { server, url: pipeline.url(), lua, lines, snapshots, readyAt: performance.now() };
}

async function snapshot(p: Probed): Promise<Snapshot> {
  const n = p.snapshots.length;
  p.server.proc.kill('SIGUSR2');
  while (p.snapshots.length === n) await sleep(5);
  return p.snapshots[n]!;
}

interface Row {
  variant: string;
  idleTarget: number;
  idleS: number;
  rep: number;
  load: number;
  rssIdleMiB: number;
  rssAfterMiB: number;
  windows: {
    rps: number;
    cpuUsPerReq: number;
    mainUsPerReq: number;
    scavengesPerKReq: number;
    markCompacts: number;
    newSpaceMiB: number;
  }[];
}
const rows: Row[] = [];

async function measure(
  p: Probed,
  variant: string,
  idleTarget: number,
  rep: number,
  tag: string,
): Promise<void> {
  const idleS = (performance.now() - p.readyAt) / 1000;
  const pid = p.server.proc.pid!;
  const load = loadAverage();
  let before = await snapshot(p);
  const rssIdleMiB = before.rss / 2 ** 20;
  const row: Row = { variant, idleTarget, idleS, rep, load, rssIdleMiB, rssAfterMiB: NaN, windows: [] };
  const newBefore = before.newSpace / 2 ** 20;
  for (let w = 0; w < windows; w++) {
    const cpu0 = threadCpuNs(pid);
    const main0 = mainThreadCpuNs(pid);
    const r = wrk({ url: p.url, luaScript: p.lua, connections, seconds: windowS });
    const cpu1 = threadCpuNs(pid);
    const main1 = mainThreadCpuNs(pid);
    const after = await snapshot(p);
    const requests = r.reqPerSec * windowS;
    row.windows.push({
      rps: r.reqPerSec,
      cpuUsPerReq: (cpu1 - cpu0) / 1000 / requests,
      mainUsPerReq: (main1 - main0) / 1000 / requests,
      scavengesPerKReq: ((after.minor - before.minor) * 1000) / requests,
      markCompacts: after.major - before.major,
      newSpaceMiB: after.newSpace / 2 ** 20,
    });
    before = after;
  }
  row.rssAfterMiB = before.rss / 2 ** 20;
  rows.push(row);
  console.log(
    `${variant} idle ${idleS.toFixed(1)} s (load ${load}): new space before ${newBefore.toFixed(2)} MiB; ` +
      row.windows
        .map(
          (w) =>
            `[${w.rps.toFixed(0)} r/s ${w.cpuUsPerReq.toFixed(0)} µs/r main ${w.mainUsPerReq.toFixed(0)} scav/kreq ${w.scavengesPerKReq.toFixed(1)} mc ${w.markCompacts} new ${w.newSpaceMiB.toFixed(1)}]`,
        )
        .join(' ') +
      ` rss ${rssIdleMiB.toFixed(0)}→${row.rssAfterMiB.toFixed(0)} MiB`,
  );
  if (trace) writeFileSync(`/tmp/idle-probe-${tag}.log`, p.lines.join(''));
  await stopAll([p.server.proc]);
}

const loadStart = loadAverage();
for (let rep = 0; rep < reps; rep++) {
  for (let k = 0; k < variants.length; k++) {
    const v = variants[(k + rep) % variants.length]!;
    const long = await start(`${v.label}-${idleLong}-${rep}`, v.flags, v.cli);
    const mid = await start(`${v.label}-${idleMid}-${rep}`, v.flags, v.cli);
    await sleep(Math.max(0, idleMid * 1000 - (performance.now() - mid.readyAt)));
    await measure(mid, v.label, idleMid, rep, `${v.label}-${idleMid}-${rep}`);
    await sleep(Math.max(0, idleLong * 1000 - (performance.now() - long.readyAt)));
    await measure(long, v.label, idleLong, rep, `${v.label}-${idleLong}-${rep}`);
    const zero = await start(`${v.label}-0-${rep}`, v.flags, v.cli);
    await measure(zero, v.label, 0, rep, `${v.label}-0-${rep}`);
  }
}
const loadEnd = loadAverage();
rmSync(work, { recursive: true, force: true });

console.log(
  `\n${format} batch ${batch} × ${connections}; ${windows} windows of ${windowS} s; load ${loadStart} → ${loadEnd}`,
);
const table: (string | number)[][] = [];
for (const v of variants)
  for (const idle of [0, idleMid, idleLong]) {
    const rs = rows.filter((r) => r.variant === v.label && r.idleTarget === idle);
    if (rs.length === 0) continue;
    const all = (f: (w: Row['windows'][number]) => number): number =>
      median(rs.flatMap((r) => r.windows.map(f)));
    const first = (f: (w: Row['windows'][number]) => number): number =>
      median(rs.map((r) => f(r.windows[0]!)));
    table.push([
      v.label,
      idle,
      all((w) => w.rps),
      first((w) => w.rps),
      all((w) => w.cpuUsPerReq),
      all((w) => w.mainUsPerReq),
      all((w) => w.scavengesPerKReq),
      all((w) => w.newSpaceMiB),
      median(rs.map((r) => r.rssIdleMiB)),
      median(rs.map((r) => r.rssAfterMiB)),
    ]);
  }
printTable(
  [
    'variant',
    'idle s',
    'req/s',
    'req/s w1',
    'µs/req',
    'main µs/req',
    'scav/kreq',
    'new MiB',
    'rss idle',
    'rss after',
  ],
  table,
);
writeResults('idle-probe', { format, batch, connections, windows, windowS, loadStart, loadEnd, rows });
