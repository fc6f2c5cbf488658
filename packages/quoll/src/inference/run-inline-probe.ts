import { performance } from 'node:perf_hooks';
import type { TensorElementType, TensorInfoDto } from '@quoll/client/wire';
import { threadClock } from '../threads/index.js';
import { boundPipelineWork } from './bound-pipeline-work.js';
import type { NativeSession } from './native-session.js';
import { runPipeline } from './run-pipeline.js';
import type { LoadedStep } from './run-pipeline.js';
import type { TensorData, WireTensor } from './tensor-data.js';
import { PROBE_CONTROL, PROBE_STATE } from './worker-protocol.js';
import type {
  ProbeLayout,
  ProbeLimits,
  ProbeReport,
  ProbeSettings,
  WorkerStepSpec,
} from './worker-protocol.js';

/**
 * The admission probe of inline runs, the part that runs in a worker thread (the parent's side
 * is `InlineProber`): the pipeline run, timed, on the largest feeds the inline path can ever
 * take, with several value patterns each. Pure apart from the runs themselves: the feeds are
 * made here from the plan the parent sent ({@link probeLayouts}), deterministically.
 */

/**
 * The value patterns, each filling every feed: zeros; pseudo-random values over a wide range;
 * the largest (±, near the type's maximum); the smallest (float subnormals, an integer type's
 * minimum); negative; NaN (floats). A pattern that says nothing for an element type fills it
 * with zeros, and is skipped when it says nothing for any feed.
 */
export const PROBE_PATTERNS = ['zeros', 'random', 'large', 'small', 'negative', 'nan'] as const;
export type ProbePattern = (typeof PROBE_PATTERNS)[number];

/** More free dimensions than this after the first (each probed at its widest) are not probed: refused. */
const MAX_FREE_DIMS = 8;

const FLOAT32_MAX = 3.4028234663852886e38;
/** A float32 subnormal (below 2^-126), the kind some CPUs compute slowly. */
const FLOAT32_SUBNORMAL = 1e-40;
/** A float64 subnormal. */
const FLOAT64_SUBNORMAL = 1e-310;

/** Element types the probe feeds (what Quoll can feed from numbers: see `allocateNumeric`). */
const FEEDABLE = new Set<TensorElementType>([
  'float32',
  'float64',
  'int8',
  'int16',
  'int32',
  'int64',
  'uint8',
  'uint16',
  'uint32',
  'uint64',
  'bool',
]);

/**
 * The shapes the probe runs the pipeline on, for its first step's declared `inputs`: the
 * largest runs the inline path can take. A run merges requests of one per-row layout, so its
 * feeds are `[rows, ...row dims]` with at most `limits.rows` rows, at most `limits.values`
 * values in all, and a row of at most `limits.requestValues` values (a request of one row).
 * Declared dimensions are kept; a free first dimension is the run's rows; the other free
 * dimensions are 1 except one, grown as far as those limits allow, in turn for each of them:
 *
 * - the most rows (`limits.rows`, fewer when the fixed row is too wide), free dimensions at 1;
 * - for each free dimension after the first: at the most rows, that dimension as wide as the
 *   values left per row allow; and at `values / requestValues` rows (4), as wide as one
 *   request's values allow (a wide row: a model whose work grows faster than its row's width is
 *   slowest there);
 * - when several inputs have free dimensions: at both row counts, the values left per row
 *   shared evenly between those inputs (each on its first free dimension).
 *
 * Why these: a run's work as a product of powers of its dimensions (rows^a × d1^b × …, the
 * shape of every cost the work bound counts) is largest, under limits on their product, at a
 * corner: all the room to one of them (the dimensions of one input multiply, so one grown
 * dimension is such a corner); under a limit on a sum (the values of several inputs add up
 * within a row), at a share of the room to each, which the even share stands for. A cost that
 * does not grow with size (faster on larger feeds) is not looked for.
 *
 * A `single` first step (run row by row) takes the same feeds; its model sees rows of one.
 * An input with a fixed first dimension keeps it (a non-`single` run has that many rows).
 * Returns why not instead when no run can be made: an input Quoll cannot feed, a fixed row
 * wider than a request may be (no request of this pipeline ever runs inline), or more than
 * {@link MAX_FREE_DIMS} free dimensions.
 */
export function probeLayouts(
  inputs: readonly TensorInfoDto[],
  single: boolean,
  limits: ProbeLimits,
): ProbeLayout[] | string {
  if (inputs.length === 0) return 'the first step has no inputs';
  const isFixed = (dim: number | string | null): dim is number => typeof dim === 'number' && dim > 0;
  let fixedRows = Infinity;
  /** Values of one row of each input, its free dimensions at 1 (a scalar input counts as one value a row). */
  const rowWidths: number[] = [];
  const free: [input: number, axis: number][] = [];
  for (const [i, input] of inputs.entries()) {
    if (!FEEDABLE.has(input.type))
      return `input "${input.name}" is ${input.type}, which the probe cannot feed`;
    const [first, ...rest] = input.shape;
    if (!single && first !== undefined && isFixed(first)) fixedRows = Math.min(fixedRows, first);
    let width = 1;
    for (const [j, dim] of rest.entries()) {
      if (isFixed(dim)) width *= dim;
      else free.push([i, j + 1]);
    }
    rowWidths.push(width);
  }
  if (free.length > MAX_FREE_DIMS)
    return `the first step's inputs have ${free.length} free dimensions, more than the ${MAX_FREE_DIMS} the probe tries`;
  const rowWidth = rowWidths.reduce((a, b) => a + b, 0);
  if (rowWidth > limits.requestValues)
    return `a row holds ${rowWidth} values, more than the ${limits.requestValues} of a request the inline path takes`;
  const mostRows = Math.max(1, Math.min(limits.rows, fixedRows, Math.floor(limits.values / rowWidth)));
  const wideRows = Number.isFinite(fixedRows)
    ? mostRows
    : Math.max(1, Math.min(mostRows, Math.floor(limits.values / limits.requestValues)));
  /** A layout of `rows` rows whose dimensions in `grow` (input, axis) share the values left per row. */
  const layout = (rows: number, grow: readonly [number, number][]): ProbeLayout | null => {
    const perRow = Math.min(limits.requestValues, Math.floor(limits.values / rows));
    if (rowWidth > perRow) return null;
    const share = Math.floor((perRow - rowWidth) / Math.max(1, grow.length));
    const dims = inputs.map((input, i) =>
      input.shape.map((dim, j) => {
        if (j === 0) return single || !isFixed(dim) ? rows : dim;
        if (isFixed(dim)) return dim;
        if (!grow.some(([gi, gj]) => gi === i && gj === j)) return 1;
        // This input's row grows from rowWidths[i] to rowWidths[i] × d, by at most its share.
        return 1 + Math.floor(share / rowWidths[i]!);
      }),
    );
    return { rows, dims };
  };
  const layouts: ProbeLayout[] = [];
  const seen = new Set<string>();
  const add = (made: ProbeLayout | null): void => {
    if (made === null) return;
    const key = JSON.stringify(made);
    if (seen.has(key)) return;
    seen.add(key);
    layouts.push(made);
  };
  add(layout(mostRows, []));
  for (const dim of free) {
    add(layout(mostRows, [dim]));
    add(layout(wideRows, [dim]));
  }
  // The first free dimension of each input that has one, sharing the room.
  const firstFree = free.filter(([i], at) => free.findIndex(([other]) => other === i) === at);
  if (firstFree.length > 1) {
    add(layout(mostRows, firstFree));
    add(layout(wideRows, firstFree));
  }
  return layouts;
}

/** The layout in words, for a verdict: `64 rows, x [64, 18]`. */
export function describeLayout(inputs: readonly TensorInfoDto[], layout: ProbeLayout): string {
  const feeds = inputs.map((input, i) => `${input.name} [${layout.dims[i]!.join(', ')}]`).join(', ');
  return `${layout.rows} rows, ${feeds}`;
}

/** A small deterministic PRNG (mulberry32): floats in [0, 1). */
function randomFrom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Integer ranges of the integer types (int64/uint64 as BigInt below). */
const INT_RANGES: Partial<Record<TensorElementType, readonly [number, number]>> = {
  int8: [-128, 127],
  int16: [-32768, 32767],
  int32: [-2147483648, 2147483647],
  uint8: [0, 255],
  uint16: [0, 65535],
  uint32: [0, 4294967295],
  bool: [0, 1],
};

/**
 * `length` values of `type` in `pattern`, or null when the pattern says nothing for the type
 * (NaN of an integer, negative of an unsigned one).
 */
export function patternValues(
  type: TensorElementType,
  pattern: ProbePattern,
  length: number,
  seed: number,
): TensorData | null {
  const random = randomFrom(seed);
  const sign = (i: number): number => (i % 2 === 0 ? 1 : -1);
  if (type === 'float32' || type === 'float64') {
    const data = type === 'float32' ? new Float32Array(length) : new Float64Array(length);
    const max = type === 'float32' ? FLOAT32_MAX : Number.MAX_VALUE;
    const tiny = type === 'float32' ? FLOAT32_SUBNORMAL : FLOAT64_SUBNORMAL;
    for (let i = 0; i < length; i++) {
      switch (pattern) {
        case 'zeros':
          break;
        case 'random':
          // Magnitudes from 1e-4 to 1e4, either sign: values of every scale a feature may have.
          data[i] = (random() * 2 - 1) * 10 ** (random() * 8 - 4);
          break;
        case 'large':
          data[i] = sign(i) * max * (0.5 + random() / 2);
          break;
        case 'small':
          data[i] = sign(i) * tiny * (1 + random());
          break;
        case 'negative':
          data[i] = -(1 + random() * 1e6);
          break;
        case 'nan':
          data[i] = Number.NaN;
          break;
      }
    }
    return data;
  }
  if (type === 'int64' || type === 'uint64') {
    const signed = type === 'int64';
    if (pattern === 'nan' || (!signed && pattern === 'negative')) return null;
    const data = signed ? new BigInt64Array(length) : new BigUint64Array(length);
    const min = signed ? -(2n ** 63n) : 0n;
    const max = signed ? 2n ** 63n - 1n : 2n ** 64n - 1n;
    for (let i = 0; i < length; i++) {
      const bits = (BigInt(Math.floor(random() * 2 ** 32)) << 32n) | BigInt(Math.floor(random() * 2 ** 32));
      data[i] =
        pattern === 'zeros'
          ? 0n
          : pattern === 'random'
            ? signed
              ? BigInt.asIntN(64, bits)
              : bits
            : pattern === 'large'
              ? max
              : pattern === 'small'
                ? min
                : -1n - BigInt(Math.floor(random() * 1e6));
    }
    return data;
  }
  const range = INT_RANGES[type];
  if (range === undefined) return null;
  const [min, max] = range;
  if (pattern === 'nan' || (min === 0 && (pattern === 'negative' || pattern === 'small'))) return null;
  const data =
    type === 'int8'
      ? new Int8Array(length)
      : type === 'int16'
        ? new Int16Array(length)
        : type === 'int32'
          ? new Int32Array(length)
          : type === 'uint16'
            ? new Uint16Array(length)
            : type === 'uint32'
              ? new Uint32Array(length)
              : new Uint8Array(length);
  for (let i = 0; i < length; i++) {
    data[i] =
      pattern === 'zeros'
        ? 0
        : pattern === 'random'
          ? min + Math.floor(random() * (max - min + 1))
          : pattern === 'large'
            ? max
            : pattern === 'small'
              ? min
              : -1 - Math.floor(random() * Math.min(1e6, -min - 1));
  }
  return data;
}

/** The feeds of one probed run, or null when the pattern says nothing for any of the inputs. */
export function probeFeeds(
  inputs: readonly TensorInfoDto[],
  layout: ProbeLayout,
  pattern: ProbePattern,
): WireTensor[] | null {
  let applies = false;
  const feeds = inputs.map((input, i): WireTensor => {
    const dims = [...layout.dims[i]!];
    const length = dims.reduce((a, b) => a * b, 1);
    const values = patternValues(input.type, pattern, length, 0x5eed + i * 7919 + layout.rows);
    if (values !== null) applies = true;
    return {
      name: input.name,
      type: input.type,
      dims,
      data: values ?? patternValues(input.type, 'zeros', length, 0)!,
    };
  });
  return applies ? feeds : null;
}

/** Thrown by a probe its parent withdrew (`PROBE_STATE.stopped`), instead of its next call into onnxruntime. */
export class ProbeStopped extends Error {
  constructor() {
    super('the probe was stopped');
    this.name = 'ProbeStopped';
  }
}

/**
 * How a probe calls into onnxruntime (loads, runs, releases) under its parent's `control`
 * ({@link PROBE_CONTROL}): `call` marks the thread as in onnxruntime for the call's length, and
 * throws {@link ProbeStopped} instead of calling once the parent stopped the probe; `release`
 * releases a session the same way, or leaves it to the thread's end once stopped. Without
 * `control`, calls are made as they come.
 */
export interface ProbeGate {
  call<T>(fn: () => T): T;
  release(session: NativeSession): void;
}

/** The {@link ProbeGate} of a probe's `control` array (none: calls are made as they come). */
export function probeGate(control: Int32Array | undefined): ProbeGate {
  if (control === undefined) return { call: (fn) => fn(), release: (session) => session.release() };
  const enter = (): boolean => {
    if (
      Atomics.compareExchange(control, PROBE_CONTROL.state, PROBE_STATE.free, PROBE_STATE.native) !==
      PROBE_STATE.free
    )
      return false;
    Atomics.add(control, PROBE_CONTROL.calls, 1);
    return true;
  };
  // Back to free unless the parent stopped the probe meanwhile (then it stays stopped).
  const leave = (): void =>
    void Atomics.compareExchange(control, PROBE_CONTROL.state, PROBE_STATE.native, PROBE_STATE.free);
  return {
    call: (fn) => {
      if (!enter()) throw new ProbeStopped();
      try {
        return fn();
      } finally {
        leave();
      }
    },
    release: (session) => {
      if (!enter()) return;
      try {
        session.release();
      } finally {
        leave();
      }
    },
  };
}

/**
 * Most loads of a pipeline's sessions a probe makes when they come out over its limit: the first,
 * then up to four more (see {@link probePipeline}).
 */
const LOAD_TRIES = 5;

/** Loads in words, for a verdict: `31.2 ms, 12.0 ms, 5.1 ms`. */
export function formatLoads(loadsUs: readonly number[]): string {
  return loadsUs.map(formatUs).join(', ');
}

/** Microseconds in words: `180 µs`, `2.4 ms`. */
export function formatUs(us: number): string {
  return us < 1000 ? `${Math.round(us)} µs` : `${(us / 1000).toFixed(1)} ms`;
}

/**
 * The whole admission probe, on this thread (the prober's worker): the work bound of the
 * pipeline `specs` from `files` (within `settings.maxWork`); the layouts of its largest inline
 * runs ({@link probeLayouts}); its sessions, made with `load` (within `settings.maxLoadUs`, the
 * fastest of up to five loads when the first is over, as the HTTP thread will take about as long to
 * make its own; each load's time is in the report's `loadsUs`); then {@link runInlineProbe}. Loads and runs are timed in this thread's CPU time
 * where the platform gives it (`threadClock`: Linux, or Node 23.9 and later), else in wall time.
 * The sessions are released whatever happens; a run that throws throws. With `control`
 * ({@link PROBE_CONTROL}), every call into onnxruntime goes through its {@link probeGate}: the
 * probe throws {@link ProbeStopped} instead of the next one once the parent stopped it.
 */
export function probePipeline(
  specs: readonly WorkerStepSpec[],
  files: ReadonlyMap<string, Uint8Array>,
  settings: ProbeSettings,
  load: (bytes: Uint8Array) => NativeSession,
  control?: Int32Array,
): ProbeReport {
  const refused = (reason: string, more: Partial<ProbeReport> = {}): ProbeReport => ({
    admitted: false,
    reason,
    work: 0,
    inputs: new Map(),
    slowestUs: 0,
    slowest: 'no run',
    runs: 0,
    loadUs: 0,
    loadsUs: [],
    ...more,
  });
  const bound = boundPipelineWork(specs, files, {
    rows: settings.limits.rows,
    elements: settings.limits.values,
  });
  if (!bound.bounded) return refused(`its work has no static bound: ${bound.reason}`);
  const known = { work: bound.work, inputs: bound.inputs };
  if (bound.work > settings.maxWork)
    return refused(
      `the static bound of its work, ${bound.work} element operations, is over the ${settings.maxWork} allowed`,
      known,
    );
  const first = specs[0]!;
  const layouts = probeLayouts(first.inputs, first.single, settings.limits);
  if (typeof layouts === 'string') return refused(layouts, known);
  const sessions = new Map<string, NativeSession>();
  // This thread's CPU time where the platform gives it: a model is judged by what it costs, not
  // by how often a busy machine preempted the probe meanwhile.
  const clock = threadClock();
  const gate = probeGate(control);
  const loadAll = (): number => {
    for (const session of sessions.values()) gate.release(session);
    sessions.clear();
    let us = 0;
    for (const spec of specs) {
      if (sessions.has(spec.sha)) continue;
      const bytes = files.get(spec.sha)!;
      const started = clock.now();
      sessions.set(
        spec.sha,
        gate.call(() => load(bytes)),
      );
      us += clock.now() - started;
    }
    return us;
  };
  try {
    // Over the limit, loaded again, up to LOAD_TRIES loads, and the fastest taken: a load slowed
    // by what else the process does at that moment (its other threads start work as a pipeline
    // deploys; a busy host) does not refuse. The first load never decides alone: the probe's
    // thread is fresh, and its first load pays for its new memory (5 December, the tutorial's
    // forest in a fresh thread pinned to one core: 20–90 ms of the thread's own time and 1 200–
    // 3 700 page faults of its new malloc arena, then 12–28 ms, then 4–6 ms by the fourth load).
    // From the second load on, a model whose fastest load is still thrice over the limit is slow
    // to load in fact, and is not loaded again for nothing. The limit bounds this fastest load,
    // not the HTTP thread's own creation, which is a first load in that thread too: 20–49 ms of
    // its own time for the forest in the same conditions, with either rule (its verdicts say it).
    const loadsUs = [loadAll()];
    let loadUs = loadsUs[0]!;
    while (
      loadsUs.length < LOAD_TRIES &&
      loadUs > settings.maxLoadUs &&
      (loadsUs.length === 1 || loadUs < 3 * settings.maxLoadUs)
    ) {
      const us = loadAll();
      loadsUs.push(us);
      loadUs = Math.min(loadUs, us);
    }
    if (loadUs > settings.maxLoadUs)
      return refused(
        `creating its sessions took ${formatUs(loadUs)}, over the ${formatUs(settings.maxLoadUs)} the HTTP thread may spend on it (its loads: ${formatLoads(loadsUs)})`,
        { ...known, loadUs, loadsUs },
      );
    const steps = specs.map((spec) => ({ spec, session: sessions.get(spec.sha)! }));
    const timing = runInlineProbe(
      steps,
      layouts,
      settings,
      () => clock.now(),
      (fn) => gate.call(fn),
    );
    return { ...timing, ...known, loadUs, loadsUs };
  } finally {
    for (const session of sessions.values()) gate.release(session);
    clock.close();
  }
}

/**
 * Runs the probe on this thread (a worker's): `settings.warmupRuns` runs first (not counted;
 * cut short by one that takes the give-up time), then every layout with every pattern, each
 * repeated until `minRepeats` runs were made and the fastest of them is within `limitUs` (the
 * fastest is taken so that a run the OS preempted does not count against the model); it refuses
 * at once when a (layout, pattern)'s runs were all over the limit after `maxRepeats` runs, or
 * after `minRepeats` runs that took `giveUpUs` in all, so that a model that is slow in fact holds
 * the probe's thread (and the probes queued behind it) for a few runs of it, not `maxRepeats`;
 * and when the timed runs took `budgetUs` in all (a model of many layouts near the limit).
 * Each run timed with `now` (µs): `probePipeline` gives this thread's CPU time where the
 * platform has it (`threadClock`), so that runs the OS preempted on a busy machine do not refuse a
 * model that is fast; wall time by default. Each run is made through `call` (the probe's
 * {@link ProbeGate}; directly by default). Throws what a run or `call` throws.
 */
export function runInlineProbe(
  steps: LoadedStep[],
  layouts: readonly ProbeLayout[],
  settings: Omit<ProbeSettings, 'limits' | 'maxWork' | 'maxLoadUs'>,
  now: () => number = () => performance.now() * 1000,
  call: <T>(fn: () => T) => T = (fn) => fn(),
): Pick<ProbeReport, 'admitted' | 'reason' | 'slowestUs' | 'slowest' | 'runs'> {
  const inputs = steps[0]!.spec.inputs;
  const giveUpUs = settings.giveUpUs;
  let runs = 0;
  let totalUs = 0;
  let slowestUs = 0;
  let slowest = 'no run';
  const timed = (feeds: WireTensor[], rows: number): number =>
    call(() => {
      const started = now();
      runPipeline(steps, feeds, rows);
      return now() - started;
    });
  const first = layouts[0] ? probeFeeds(inputs, layouts[0], 'zeros') : null;
  for (let i = 0; first !== null && i < settings.warmupRuns; i++)
    // One run as long as the give-up time is warm-up enough (the model is slow, or this thread was).
    if (timed(first, layouts[0]!.rows) > giveUpUs) break;
  for (const layout of layouts) {
    for (const pattern of PROBE_PATTERNS) {
      const feeds = probeFeeds(inputs, layout, pattern);
      if (feeds === null) continue;
      let fastest = Infinity;
      let spentUs = 0;
      for (let repeat = 1; repeat <= settings.maxRepeats; repeat++) {
        const us = timed(feeds, layout.rows);
        fastest = Math.min(fastest, us);
        spentUs += us;
        runs++;
        if (repeat < settings.minRepeats) continue;
        // Enough when one was fast; or when all were slow for the give-up time (one preempted
        // run never decides it: at least minRepeats are made).
        if (fastest <= settings.limitUs || spentUs > giveUpUs) break;
      }
      totalUs += spentUs;
      if (fastest > slowestUs) {
        slowestUs = fastest;
        slowest = `${pattern} values, ${describeLayout(inputs, layout)}`;
      }
      if (fastest > settings.limitUs) {
        const reason = `its probed run on ${slowest} took ${formatUs(slowestUs)} at best, over the ${formatUs(settings.limitUs)} allowed`;
        return { admitted: false, reason, slowestUs, slowest, runs };
      }
      if (totalUs > settings.budgetUs) {
        const reason = `its probe's runs took ${formatUs(totalUs)} in all, over the ${formatUs(settings.budgetUs)} a probe may take`;
        return { admitted: false, reason, slowestUs, slowest, runs };
      }
    }
  }
  if (runs === 0) return { admitted: false, reason: 'the probe made no run', slowestUs, slowest, runs };
  return { admitted: true, reason: '', slowestUs, slowest, runs };
}
