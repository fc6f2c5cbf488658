// What the order of a request's headers does to p99: two Quoll servers of one build on core 0,
// A driven by the wrk script writeLua wrote before 5 December (headers in `wrk.headers`, which
// each wrk process writes in an order of its own), B by writeLua's (one order); wrk on core 1,
// interleaved A B / B A, JSON batch 1 × 16, each run a fresh set of connections.
//   npx tsx bench/header-order-ab.ts [seconds=2] [runs=10]
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  awaitInlineVerdict,
  deployModel,
  keepHarnessOffServerCore,
  loadAverage,
  median,
  startQuoll,
  stopAll,
  wrk,
  writeBenchModel,
  writeLua,
  verdictSummary,
  type BenchServer,
} from './support.js';
keepHarnessOffServerCore();
const [seconds = 2, runs = 10] = process.argv.slice(2).map(Number);
const work = mkdtempSync(join(tmpdir(), 'churn-pair-'));
const modelPath = writeBenchModel(work);
const sides: {
  label: string;
  server: BenchServer;
  url: string;
  lua: string;
  p99: number[];
  rps: number[];
}[] = [];
const procs: BenchServer['proc'][] = [];
try {
  for (const label of ['A', 'B']) {
    // One server at a time on the core until its admission probe has answered (quoll-ab.ts says why).
    const s = await startQuoll(work, label);
    procs.push(s.proc);
    const p = await deployModel(s.client, 'benchmodel', modelPath, 'benchpipe');
    await awaitInlineVerdict(s, label);
    let lua = writeLua(work, { format: 'json', batch: 1, token: s.token, tag: label });
    if (label === 'A') {
      // The old script: the same body and headers, set in wrk's table.
      const body = /io\.open\("([^"]+)"/.exec(readFileSync(lua, 'utf8'))?.[1] ?? '';
      lua = join(work, 'table-order.lua');
      writeFileSync(
        lua,
        [
          'wrk.method = "POST"',
          `local f = io.open("${body}", "rb"); wrk.body = f:read("*a"); f:close()`,
          'wrk.headers["Content-Type"] = "application/json"',
          'wrk.headers["Accept"] = "application/json"',
          `wrk.headers["Authorization"] = "Bearer ${s.token}"`,
        ].join('\n'),
      );
    }
    sides.push({ label, server: s, url: p.url(), lua, p99: [], rps: [] });
  }
  // Warm-up, then A B, B A, … (which goes first alternates).
  for (const s of sides) wrk({ url: s.url, luaScript: s.lua, connections: 16, seconds: 2 });
  const l0 = loadAverage();
  for (let i = 0; i < runs; i++)
    for (const s of i % 2 ? [...sides].reverse() : sides) {
      const r = wrk({ url: s.url, luaScript: s.lua, connections: 16, seconds });
      s.p99.push(r.p99Ms);
      s.rps.push(r.reqPerSec);
    }
  console.log(`json 1 × 16, ${seconds} s × ${runs}, load ${l0}–${loadAverage()}`);
  for (const s of sides)
    console.log(
      `${s.label} (${s.label === 'A' ? "wrk's order" : 'one order'}, inline ${verdictSummary(s.server)}): p99 median ${median(s.p99)} ms [${s.p99.map((p) => p.toFixed(1)).join(' ')}], req/s ${Math.round(median(s.rps))}`,
    );
} finally {
  await stopAll(procs);
  rmSync(work, { recursive: true, force: true });
}
