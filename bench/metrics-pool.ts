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

/** One rotation's pairs and the order its servers were started in. */
interface Rotation {
  order: string;
  ratios: RunRatios;
}

/** One run's JSON batch-1 ratios, pooled and by rotation. */
interface Run {
  all: RunRatios;
  rotations: Rotation[];
}

function readRun(path: string): Run {
  const run = JSON.parse(readFileSync(path, 'utf8')) as {
    results: Array<{
      format: string;
      batch: number;
      ratios: RunRatios;
      droppedPairs: number;
      perRotation: Array<{ order: string[]; ratios?: RunRatios }>;
    }>;
  };
  const json = run.results.find((r) => r.format === 'json' && r.batch === 1);
  if (json === undefined) throw new Error(`${path}: no JSON batch-1 results`);
  const n = json.perRotation.length;
  // Runs before 5 December 10:30 kept no per-rotation pairs: theirs are in rotation order, the
  // same number a rotation when no pair was left out.
  const rotations = json.perRotation.map((r, k): Rotation => ({
    order: r.order.join(','),
    ratios:
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
  }));
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

/**
 * The server started first in a rotation answers about 2 % less than its partners over the
 * whole rotation (6 runs of 5 December 09:59–10:29: started first / partner 0.978, second 1.008,
 * third 1.005; cause not found). The bench rotates the start order so that each role is first
 * in one rotation of three, which cancels the effect in the mean but not in a median of the
 * pooled pairs (a third of "on"'s pairs then sit lower, a sixth higher: the median moves by
 * about −0.4 %). So also: each start order's median, and their geometric mean (each role first
 * equally often: the effect cancels), bootstrapped by resampling rotations within each order.
 */
function balanced(byOrder: number[][]): number {
  return Math.exp(byOrder.reduce((sum, xs) => sum + Math.log(median(xs)), 0) / byOrder.length);
}

/** Balanced estimates of `RESAMPLES` resamples of rotations within each start order. */
function bootBalanced(byOrder: number[][][], next: () => number): number[] {
  const out: number[] = [];
  for (let b = 0; b < RESAMPLES; b++) {
    out.push(
      balanced(
        byOrder.map((rotations) => {
          const sample: number[] = [];
          for (let i = 0; i < rotations.length; i++)
            sample.push(...rotations[Math.floor(next() * rotations.length)]!);
          return sample;
        }),
      ),
    );
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
  const rotations = runs.flatMap((r) => r.rotations.map((x) => x.ratios));
  const orders = [...new Set(runs.flatMap((r) => r.rotations.map((x) => x.order)))];
  /** Per start order, its rotations' pairs of measure m. */
  const byOrder = (m: Measure): number[][][] =>
    orders.map((o) => runs.flatMap((r) => r.rotations.filter((x) => x.order === o).map((x) => x.ratios[m])));
  const all: RunRatios = {
    onOverOff: pool('onOverOff'),
    controlOverOff: pool('controlOverOff'),
    cpuOnOverOff: pool('cpuOnOverOff'),
    cpuControlOverOff: pool('cpuControlOverOff'),
    mainOnOverOff: pool('mainOnOverOff'),
    mainControlOverOff: pool('mainControlOverOff'),
  };
  return { paths, runs, all, rotations, orders, byOrder };
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
const balancedBoots = pooled.map(
  (g) => new Map(MEASURES.map(([m]) => [m, bootBalanced(g.byOrder(m), next)])),
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
  console.log(`balanced over the start orders (${g.orders.map((o) => `[${o}]`).join(' ')})`);
  printTable(
    [
      'measure',
      'each start order’s median',
      'their geometric mean',
      'bootstrap 90 % (rotations within each order)',
    ],
    MEASURES.map(([m, label]) => [
      label,
      g
        .byOrder(m)
        .map((rs) => median(rs.flat()).toFixed(3))
        .join(' / '),
      balanced(g.byOrder(m).map((rs) => rs.flat())).toFixed(3),
      g.byOrder(m).every((rs) => rs.length > 1)
        ? interval(balancedBoots[k]!.get(m)!)
        : '– (one rotation of an order)',
    ]),
  );
});
if (pooled.length === 2) {
  console.log('\nB over A (median of B / median of A; bootstrap 90 %, each group resampled on its own)');
  printTable(
    ['measure', 'B / A', 'bootstrap 90 %: rotations', 'pairs', 'balanced B / A', 'bootstrap 90 %'],
    MEASURES.map(([m, label]) => {
      const ratio = (boot: typeof boots): string => {
        const a = boot[0]!.get(m)!;
        const b = boot[1]!.get(m)!;
        return interval(b.map((x, i) => x / a[i]!));
      };
      const bal = (g: (typeof pooled)[number]): number => balanced(g.byOrder(m).map((rs) => rs.flat()));
      return [
        label,
        (median(pooled[1]!.all[m]) / median(pooled[0]!.all[m])).toFixed(3),
        ratio(rotationBoots),
        ratio(boots),
        (bal(pooled[1]!) / bal(pooled[0]!)).toFixed(3),
        pooled.every((g) => g.byOrder(m).every((rs) => rs.length > 1)) ? ratio(balancedBoots) : '–',
      ];
    }),
  );
}
