// Pools the paired ratios of several runs of bench/metrics.bench.ts (each run's
// bench/results/metrics.json, copied aside) and says how precisely their medians are known:
// the median over every pair of every run, its middle half, and two bootstrap 90 % intervals of
// the median (4 000 resamples, a fixed seed so a rerun prints the same): one resampling pairs,
// one resampling whole rotations (each rotation's pairs together). The pairs of one rotation
// share its three server processes, and a process can be a few per cent faster or slower than
// its twin for its whole life (an A/A rotation at 0.954 in all its 6 pairs, 5 December 10:16),
// so pairs are not independent draws: the rotations' interval is the honest one, the pairs'
// the narrower. One run's median moves by about ±1–3 % on this machine (its A/A shows it), the
// size of the issue's whole margin (on / no-metrics ≥ 0.98), so a reading of the target is
// several runs pooled, with the A/A pooled beside it, and the rotations' interval says whether
// ≥ 0.98 is shown.
//
// Two groups (separated by `--`) are an A/B of two builds, each measured by the same bench in
// runs interleaved in one script (A, B, A, B, …): the script then also prints B's median over
// A's with its bootstrap interval (each group resampled on its own). The pairs of one run share
// its minutes and servers, so the intervals are a little narrower than the truth; read them
// beside the per-run medians, which are printed too.
//
// Usage: npx tsx bench/metrics-pool.ts <run.json>... [-- <run.json>...]
import { readFileSync } from 'node:fs';
import { median, percentile, printTable } from './support.js';

/** The per-pair ratios one run of metrics.bench.ts keeps for the JSON workload. */
interface RunRatios {
  onOverOff: number[];
  controlOverOff: number[];
  cpuOnOverOff: number[];
  cpuControlOverOff: number[];
  mainOnOverOff: number[];
  mainControlOverOff: number[];
}
type Measure = keyof RunRatios;
const MEASURES: Array<[Measure, string]> = [
  ['onOverOff', 'on/no-metrics'],
  ['controlOverOff', 'A/A'],
  ['cpuOnOverOff', 'CPU on/no-metrics'],
  ['cpuControlOverOff', 'CPU A/A'],
  ['mainOnOverOff', 'HTTP thread on/no-metrics'],
  ['mainControlOverOff', 'HTTP thread A/A'],
];

/** One run's JSON batch-1 ratios, pooled and by rotation. */
interface Run {
  all: RunRatios;
  rotations: RunRatios[];
}

function readRun(path: string): Run {
  const run = JSON.parse(readFileSync(path, 'utf8')) as {
    results: Array<{
      format: string;
      batch: number;
      ratios: RunRatios;
      droppedPairs: number;
      perRotation: Array<{ ratios?: RunRatios }>;
    }>;
  };
  const json = run.results.find((r) => r.format === 'json' && r.batch === 1);
  if (json === undefined) throw new Error(`${path}: no JSON batch-1 results`);
  const n = json.perRotation.length;
  // Runs before 5 December 10:30 kept no per-rotation pairs: theirs are in rotation order, the
  // same number a rotation when no pair was left out.
  const rotations = json.perRotation.map(
    (r, k): RunRatios =>
      r.ratios ??
      (json.droppedPairs > 0
        ? (() => {
            throw new Error(`${path}: pairs left out and no per-rotation ratios`);
          })()
        : (Object.fromEntries(
            MEASURES.map(([m]) => {
              const xs = json.ratios[m];
              const size = xs.length / n;
              return [m, xs.slice(k * size, (k + 1) * size)];
            }),
          ) as unknown as RunRatios)),
  );
  return { all: json.ratios, rotations };
}

/** A small deterministic generator (mulberry32): the same intervals on every rerun. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const RESAMPLES = 4000;

/** Medians of `RESAMPLES` resamples (with replacement) of xs. */
function bootMedians(xs: number[], next: () => number): number[] {
  const out: number[] = [];
  const sample = new Array<number>(xs.length);
  for (let b = 0; b < RESAMPLES; b++) {
    for (let i = 0; i < xs.length; i++) sample[i] = xs[Math.floor(next() * xs.length)]!;
    out.push(median(sample));
  }
  return out;
}

/** Medians of `RESAMPLES` resamples of whole rotations (as many as there are), pairs pooled. */
function bootRotationMedians(rotations: number[][], next: () => number): number[] {
  const out: number[] = [];
  for (let b = 0; b < RESAMPLES; b++) {
    const sample: number[] = [];
    for (let i = 0; i < rotations.length; i++)
      sample.push(...rotations[Math.floor(next() * rotations.length)]!);
    out.push(median(sample));
  }
  return out;
}

const interval = (xs: number[]): string => `${percentile(xs, 5).toFixed(3)}–${percentile(xs, 95).toFixed(3)}`;

const args = process.argv.slice(2);
const split = args.indexOf('--');
const groups = (split < 0 ? [args] : [args.slice(0, split), args.slice(split + 1)]).filter(
  (g) => g.length > 0,
);
if (groups.length === 0)
  throw new Error('usage: npx tsx bench/metrics-pool.ts <run.json>... [-- <run.json>...]');

const pooled = groups.map((paths) => {
  const runs = paths.map(readRun);
  const pool = (m: Measure): number[] => runs.flatMap((r) => r.all[m]);
  const rotations = runs.flatMap((r) => r.rotations);
  const all: RunRatios = {
    onOverOff: pool('onOverOff'),
    controlOverOff: pool('controlOverOff'),
    cpuOnOverOff: pool('cpuOnOverOff'),
    cpuControlOverOff: pool('cpuControlOverOff'),
    mainOnOverOff: pool('mainOnOverOff'),
    mainControlOverOff: pool('mainControlOverOff'),
  };
  return { paths, runs, all, rotations };
});

const next = random(15);
const boots = pooled.map((g) => new Map(MEASURES.map(([m]) => [m, bootMedians(g.all[m], next)])));
const rotationBoots = pooled.map(
  (g) =>
    new Map(
      MEASURES.map(([m]) => [
        m,
        bootRotationMedians(
          g.rotations.map((r) => r[m]),
          next,
        ),
      ]),
    ),
);
pooled.forEach((g, k) => {
  console.log(`\n${groups.length > 1 ? `group ${'AB'[k]}: ` : ''}${g.paths.join(' ')}`);
  printTable(
    [
      'measure',
      'pairs',
      'rotations',
      'median',
      'middle half',
      'bootstrap 90 % of the median: rotations',
      'pairs',
      'per run',
    ],
    MEASURES.map(([m, label]) => [
      label,
      g.all[m].length,
      g.rotations.length,
      median(g.all[m]).toFixed(3),
      `${percentile(g.all[m], 25).toFixed(3)}–${percentile(g.all[m], 75).toFixed(3)}`,
      interval(rotationBoots[k]!.get(m)!),
      interval(boots[k]!.get(m)!),
      g.runs.map((r) => median(r.all[m]).toFixed(3)).join(' '),
    ]),
  );
});
if (pooled.length === 2) {
  console.log('\nB over A (median of B / median of A; bootstrap 90 %, each group resampled on its own)');
  printTable(
    ['measure', 'B / A', 'bootstrap 90 %: rotations', 'pairs'],
    MEASURES.map(([m, label]) => {
      const ratio = (boot: typeof boots): string => {
        const a = boot[0]!.get(m)!;
        const b = boot[1]!.get(m)!;
        return interval(b.map((x, i) => x / a[i]!));
      };
      return [
        label,
        (median(pooled[1]!.all[m]) / median(pooled[0]!.all[m])).toFixed(3),
        ratio(rotationBoots),
        ratio(boots),
      ];
    }),
  );
}
