// The serving engine against what a careful user writes instead: Quoll's endpoints vs the
// hand-rolled one-thread reference F1 (`bench/reference-server.ts`: fastify + onnxruntime-node
// with intraOpNumThreads 1 on the main thread), both pinned to core 0 with wrk on core 1,
// A B A B … interleaved, median of BENCH_REPS; then Quoll's Open Inference Protocol v2 JSON
// against its own JSON endpoint on the same server; then one server holding 100 deployed
// pipelines over 3 small models (RSS, threads, first answer of a model that was unloaded).
// Every figure carries the machine's 1-minute load average while it was taken (shared machine).
// Env: BENCH_WARMUP_S (2), BENCH_SECONDS (4), BENCH_REPS (3), BENCH_ONLY (comma-separated
// case names, e.g. "json-1x16,fleet"), BENCH_REF_DEFAULT=1 adds the reference with
// onnxruntime's default threads (F) as a second column, BENCH_PIPELINES (100),
// BENCH_QUOLL_ARGS (extra server flags, space-separated).
import { mkdtempSync, rmSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Pipeline } from '@quoll/client';
import { makeHouseRows } from '../test/support/synthetic-data.js';
import { makeTreeEnsembleRegressor } from '../test/support/synthetic-models.js';
import {
  keepHarnessOffServerCore,
  awaitInlineVerdict,
  checkVerdicts,
  cpuSeconds,
  deployModel,
  loadAverage,
  median,
  modelName,
  printTable,
  processFootprint,
  REPS,
  SECONDS,
  spawnPinned,
  startQuoll,
  stopAll,
  waitFor,
  WARMUP,
  wrk,
  writeBenchModel,
  writeLua,
  writeResults,
  type BodyFormat,
} from './support.js';

// The harness on wrk's core, off the servers' (support.ts says why).
keepHarnessOffServerCore();
const only = process.env.BENCH_ONLY?.split(',').map((s) => s.trim());
const wanted = (name: string): boolean => !only || only.includes(name);
const PIPELINES = Number(process.env.BENCH_PIPELINES ?? 100);
const QUOLL_ARGS = (process.env.BENCH_QUOLL_ARGS ?? '').split(' ').filter(Boolean);
const work = mkdtempSync(join(tmpdir(), 'quoll-bench-serving-'));
const modelPath = writeBenchModel(work);

/** One side of a comparison: a server process and the wrk script that loads it. */
interface Side {
  label: string;
  proc: ChildProcess;
  url: string;
  lua: string;
}

interface Case {
  name: string;
  batch: number;
  connections: number;
  /** The measured side first, then what it is compared with (and optional extra columns). */
  sides: Side[];
  target: string;
  met: (ratio: number, p99Ms: number) => boolean;
}

interface SideResult {
  label: string;
  rowsPerSec: number;
  p99Ms: number;
  cpuUsPerRequest: number;
  load: number[];
  non2xx: number;
}

function runCase(c: Case): SideResult[] {
  const samples = c.sides.map(() => ({ rps: [] as number[], p99: [] as number[], cpu: [] as number[] }));
  const loads = c.sides.map(() => [] as number[]);
  const errors = c.sides.map(() => 0);
  for (const side of c.sides)
    wrk({ url: side.url, luaScript: side.lua, connections: c.connections, seconds: WARMUP });
  for (let rep = 0; rep < REPS; rep++) {
    for (const [i, side] of c.sides.entries()) {
      loads[i]!.push(loadAverage());
      const before = cpuSeconds(side.proc);
      const r = wrk({ url: side.url, luaScript: side.lua, connections: c.connections, seconds: SECONDS });
      const used = cpuSeconds(side.proc) - before;
      samples[i]!.rps.push(r.reqPerSec);
      samples[i]!.p99.push(r.p99Ms);
      samples[i]!.cpu.push((used * 1e6) / (r.reqPerSec * SECONDS));
      errors[i]! += r.non2xx;
    }
  }
  return c.sides.map((side, i) => ({
    label: side.label,
    rowsPerSec: median(samples[i]!.rps) * c.batch,
    p99Ms: median(samples[i]!.p99),
    cpuUsPerRequest: median(samples[i]!.cpu),
    load: loads[i]!,
    non2xx: errors[i]!,
  }));
}

const procs: ChildProcess[] = [];
const results: Record<string, unknown> = { model: modelName, warmupS: WARMUP, seconds: SECONDS, reps: REPS };
const table: (string | number)[][] = [];
try {
  // -- throughput: Quoll and the references on core 0
  const caseNames = ['json-1x16', 'json-1x1', 'arrow-1000x1', 'arrow-1000x16', 'oip-1x16', 'oip-100x16'];
  if (caseNames.some(wanted)) {
    const q = await startQuoll(work, 'quoll', QUOLL_ARGS);
    procs.push(q.proc);
    const pipeline = await deployModel(q.client, 'benchmodel', modelPath, 'benchpipe');
    // Its admission probe answered before anything else starts on its core (the references, the
    // warm-up): JSON batch 1 runs inline or in the workers by it, at ~1.5× the CPU apart.
    results.inlineVerdict = await awaitInlineVerdict(q, 'Quoll');
    const refScript = fileURLToPath(new URL('./reference-server.ts', import.meta.url));
    const startRef = async (port: number, threads: string): Promise<ChildProcess> => {
      const proc = spawnPinned('0', process.execPath, [
        '--import',
        'tsx',
        refScript,
        modelPath,
        String(port),
        threads,
      ]);
      procs.push(proc);
      await waitFor(proc, /listening on/);
      return proc;
    };
    const f1 = await startRef(8471, '1');
    const f = process.env.BENCH_REF_DEFAULT === '1' ? await startRef(8472, '0') : null;
    const quollSide = (format: BodyFormat, batch: number): Side => ({
      label: format === 'oip' ? 'Quoll OIP v2' : 'Quoll',
      proc: q.proc,
      url: format === 'oip' ? `${q.url}/v2/models/benchpipe/infer` : pipeline.url(),
      lua: writeLua(work, { format, batch, token: q.token, tag: 'q' }),
    });
    const refSides = (format: BodyFormat, batch: number): Side[] => [
      {
        label: 'F1',
        proc: f1,
        url: 'http://127.0.0.1:8471/infer',
        lua: writeLua(work, { format, batch, tag: 'f' }),
      },
      ...(f
        ? [
            {
              label: 'F',
              proc: f,
              url: 'http://127.0.0.1:8472/infer',
              lua: writeLua(work, { format, batch, tag: 'f' }),
            },
          ]
        : []),
    ];
    const allCases: Case[] = [
      {
        name: 'json-1x16',
        batch: 1,
        connections: 16,
        sides: [quollSide('json', 1), ...refSides('json', 1)],
        target: '≥ 0.7 × F1, p99 ≤ 5 ms',
        met: (ratio, p99) => ratio >= 0.7 && p99 <= 5,
      },
      {
        name: 'json-1x1',
        batch: 1,
        connections: 1,
        sides: [quollSide('json', 1), ...refSides('json', 1)],
        target: '≥ 0.6 × F1',
        met: (ratio) => ratio >= 0.6,
      },
      ...[1, 16].map((connections): Case => ({
        name: `arrow-1000x${connections}`,
        batch: 1000,
        connections,
        sides: [quollSide('arrow', 1000), ...refSides('arrow', 1000)],
        target: '≥ 0.9 × F1',
        met: (ratio) => ratio >= 0.9,
      })),
      ...[1, 100].map((batch): Case => ({
        name: `oip-${batch}x16`,
        batch,
        connections: 16,
        sides: [quollSide('oip', batch), quollSide('json', batch)],
        target: 'within 10 % of Quoll JSON',
        met: (ratio) => ratio >= 0.9,
      })),
    ];
    const cases = allCases.filter((c) => wanted(c.name));
    const throughput: Record<string, unknown>[] = [];
    for (const c of cases) {
      const sides = runCase(c);
      const [a, b] = [sides[0]!, sides[1]!];
      const ratio = a.rowsPerSec / b.rowsPerSec;
      const row = {
        case: c.name,
        batch: c.batch,
        connections: c.connections,
        target: c.target,
        ratio,
        sides,
      };
      throughput.push(row);
      console.log(JSON.stringify(row));
      table.push([
        c.name,
        `${a.label} / ${b.label}`,
        Math.round(a.rowsPerSec),
        Math.round(b.rowsPerSec),
        ratio,
        a.p99Ms,
        b.p99Ms,
        a.cpuUsPerRequest,
        b.cpuUsPerRequest,
        b.cpuUsPerRequest / a.cpuUsPerRequest,
        sides[2] ? a.rowsPerSec / sides[2].rowsPerSec : '',
        `${Math.min(...sides.flatMap((s) => s.load)).toFixed(1)}–${Math.max(...sides.flatMap((s) => s.load)).toFixed(1)}`,
        sides.reduce((sum, s) => sum + s.non2xx, 0),
        c.met(ratio, a.p99Ms) ? 'met' : 'MISSED',
      ]);
    }
    results.throughput = throughput;
    // A trip during the runs changes the path under the figures: said at the end.
    checkVerdicts([{ label: 'Quoll', server: q }]);
    results.inlineVerdicts = q.verdicts;
    await stopAll(procs.splice(0));
  }

  // -- 100 pipelines over 3 small models on one server (both cores; the default pool)
  if (wanted('fleet')) {
    const models = [
      { seed: 31, trees: 10, depth: 4 },
      { seed: 32, trees: 20, depth: 5 },
      { seed: 33, trees: 30, depth: 5 },
    ].map((options) => makeTreeEnsembleRegressor(options));
    const largest = Math.max(...models.map((m) => m.byteLength));
    // A budget of one model per worker (pool of 2): switching models unloads the other one.
    const budget = 2 * largest;
    const s = await startQuoll(work, 'fleet', ['--model-memory', String(budget), ...QUOLL_ARGS], {
      cores: '0,1',
    });
    procs.push(s.proc);
    const idle = processFootprint(s.proc.pid!);
    const uploaded = [];
    for (const [i, bytes] of models.entries())
      uploaded.push(
        await (await s.client.uploadModel(`small${i}`, bytes)).configure({ tensorFields: ['tensor'] }),
      );
    const t0 = performance.now();
    const pipelines: Pipeline[] = [];
    for (let i = 0; i < PIPELINES; i++) {
      const p = await s.client.buildPipeline(`fleet${i}`);
      await p.addModelStep(uploaded[i % 3]!);
      pipelines.push(await p.deploy());
    }
    const deploySeconds = (performance.now() - t0) / 1000;
    const deployed = processFootprint(s.proc.pid!);
    const row = [{ tensor: Array.from(makeHouseRows(1, 7)) }];
    // Every pipeline answers once; before each request, status() says whether its model is
    // loaded: the first answers of unloaded ones are the cold-start figures.
    const cold: number[] = [];
    const warm: number[] = [];
    const load = loadAverage();
    for (const p of pipelines) {
      const unloaded = (await p.status()).models.every((m) => m.loadedOn.length === 0);
      const t = performance.now();
      await p.infer(row);
      (unloaded ? cold : warm).push(performance.now() - t);
    }
    const served = processFootprint(s.proc.pid!);
    const fleet = {
      pipelines: PIPELINES,
      modelBytes: models.map((m) => m.byteLength),
      modelMemoryBudget: budget,
      idle,
      deployed,
      served,
      deploySeconds,
      coldAnswers: cold.length,
      coldP50Ms: median(cold),
      coldMaxMs: Math.max(...cold),
      warmP50Ms: median(warm),
      load,
    };
    results.fleet = fleet;
    console.log(JSON.stringify(fleet));
    const fleetRow = (name: string, what: string, a: number, b: number, met: boolean): void => {
      table.push([name, what, a, b, '', '', '', '', '', '', '', load.toFixed(1), 0, met ? 'met' : 'MISSED']);
    };
    fleetRow(
      'fleet RSS MiB',
      `${PIPELINES} pipelines`,
      Math.round(served.rssMiB),
      Math.round(idle.rssMiB),
      served.rssMiB <= 600,
    );
    fleetRow('fleet threads', `${PIPELINES} pipelines`, served.threads, idle.threads, served.threads <= 16);
    const coldMax = Math.max(...cold);
    fleetRow(
      'fleet cold answer ms',
      `${cold.length} unloaded`,
      Math.round(median(cold)),
      Math.round(coldMax),
      coldMax <= 1000,
    );
    await stopAll(procs.splice(0));
  }
} finally {
  await stopAll(procs);
}
console.log(
  `\nmodel: ${modelName}; warmup ${WARMUP}s, measure ${SECONDS}s, median of ${REPS}; wrk on core 1`,
);
printTable(
  [
    'case',
    'A / B',
    'A rows/s',
    'B rows/s',
    'A/B',
    'A p99 ms',
    'B p99 ms',
    'A cpu µs/req',
    'B cpu µs/req',
    'B/A cpu',
    'A/F',
    'load',
    'non2xx',
    'target',
  ],
  table,
);
console.log(
  '(fleet rows: A = after serving every pipeline once, B = idle server before deploying; cold answer: A = p50, B = max)',
);
writeResults('serving', results);
rmSync(work, { recursive: true, force: true });
