/**
 * The inference worker: a worker_threads entry of the server's shared pool. It holds one
 * onnxruntime session per model (by SHA), shared by every pipeline plan that uses the model,
 * and runs requests one after another, so the server's event loop never runs a model.
 * Importing this file outside a worker does nothing.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import { toErrorOutcome } from '../errors/index.js';
import { jsonRecordsToTable } from './decode/scan-records.js';
import type { ColumnAllocator } from './decode/scan-records.js';
import { collectBuffers } from './decode/transferred-table.js';
import type { TransferredTable } from './decode/transferred-table.js';
import { bindColumns, buildFeedsFromRecordColumns } from './input-binding.js';
import { feedLayoutKey, mergeFeeds, rowWidth, transferList } from './tensor-data.js';
import type { WireTensor } from './tensor-data.js';
import { DecodeProgress } from './decode-progress.js';
import { echoBuffers } from './echo-buffers.js';
import { LANE, Lane, SLOT } from './handoff-lane.js';
import { createSession } from './native-session.js';
import type { NativeSession } from './native-session.js';
import { probePipeline } from './run-inline-probe.js';
import { runPipeline, StepError } from './run-pipeline.js';
import type { LoadedStep } from './run-pipeline.js';
import { WORKER_LIFE, WORKER_PROTOCOL_VERSION } from './worker-protocol.js';
import type { ParentMessage, RecordsPart, WorkerMessage, WorkerStepSpec } from './worker-protocol.js';

const port = parentPort;
/** Sessions by model SHA. */
const sessions = new Map<string, NativeSession>();
/** Pipeline plans by key. */
const plans = new Map<string, WorkerStepSpec[]>();
// Requests run strictly one at a time: onnxruntime already uses the core, and overlapping
// runs would only make each request slower.
let queue: Promise<void> = Promise.resolve();
/** Where this worker tells the parent which JSON body it is decoding (see {@link DecodeProgress}). */
const data = workerData as {
  progress?: SharedArrayBuffer;
  lane?: SharedArrayBuffer;
  life?: SharedArrayBuffer;
} | null;
const progress = new DecodeProgress(data?.progress ?? new SharedArrayBuffer(24));
/** The synchronous hand-off, when the parent gave one (see `handoff-lane.ts`). */
const lane = data?.lane ? new Lane(data.lane) : null;
/** Where this worker tells the parent it has started (`WORKER_LIFE`). */
const life = data?.life ? new Int32Array(data.life) : null;
/** Set by `leave`: the thread ends; it parks no more. */
let leaving = false;
/** Messages received, and those not yet handled: the worker parks only when none is left. */
let received = 0;
let unhandled = 0;

if (port) {
  port.on('message', (message: ParentMessage) => {
    received++;
    unhandled++;
    // handleSafely never rejects: a failure answers its own message and the next ones still run.
    queue = queue
      .then(() => handleSafely(message))
      .finally(() => {
        if (--unhandled === 0 && lane) setImmediate(park);
      });
  });
  if (lane) setImmediate(park);
}

/** How long one park lasts before the worker looks at its event loop again (it parks again at once). */
const PARK_SLICE_MS = 1000;

/**
 * Parks the idle worker in `Atomics.wait` on the lane's doorbell and serves slot requests
 * synchronously, without returning to the event loop between them; leaves when the parent has
 * posted a message (handled on the event loop, after which the worker parks again), when told
 * to stop, and once per {@link PARK_SLICE_MS}.
 */
function park(): void {
  if (!lane || leaving || unhandled > 0 || Atomics.load(lane.control, LANE.parkable) !== 1) return;
  const control = lane.control;
  Atomics.store(control, LANE.parked, 1);
  Atomics.add(control, LANE.parks, 1);
  for (;;) {
    const bell = Atomics.load(control, LANE.doorbell);
    if (Atomics.load(control, LANE.stop) === 1 || Atomics.load(control, LANE.posted) !== received) break;
    if (Atomics.load(control, LANE.state) === SLOT.request) {
      serveSlot(lane);
      continue;
    }
    if (Atomics.wait(control, LANE.doorbell, bell, PARK_SLICE_MS) === 'timed-out') break;
  }
  Atomics.store(control, LANE.parked, 0);
  // A request written while the worker was leaving is served now rather than after the slice.
  if (Atomics.load(control, LANE.state) === SLOT.request) serveSlot(lane);
  if (
    Atomics.load(control, LANE.stop) !== 1 &&
    Atomics.load(control, LANE.posted) === received &&
    Atomics.load(control, LANE.parkable) === 1
  )
    setImmediate(park);
}

/** Runs the slot's request and writes its outputs (or its failure) back. */
function serveSlot(lane: Lane): void {
  const started = performance.now();
  let state: number = SLOT.done;
  try {
    const request = lane.readRequest();
    const outputs = runPipeline(stepsOf(request.plan), request.feeds, request.rows);
    if (!lane.writeTensors(outputs)) state = SLOT.declined;
  } catch (error) {
    lane.writeFailure(describe(error));
    state = SLOT.failed;
  }
  Atomics.store(
    lane.control,
    LANE.runUs,
    Math.min(2 ** 31 - 1, Math.round((performance.now() - started) * 1000)),
  );
  lane.settle(state);
}

function reply(message: WorkerMessage, transfer: ArrayBuffer[] = []): void {
  port?.postMessage(message, transfer);
}

/**
 * Handles one message; whatever goes wrong in it (a message that is not one, a release that
 * throws) is answered as a failure of that message when it has an id, and never rejects: a
 * rejection would leave every later message of the queue unhandled and, unhandled itself, end
 * the thread with the requests of other callers in it.
 */
async function handleSafely(message: ParentMessage): Promise<void> {
  try {
    await handle(message);
  } catch (error) {
    const id: unknown = (message as { id?: unknown } | null)?.id;
    if (typeof id !== 'number') return;
    try {
      reply({ v: WORKER_PROTOCOL_VERSION, type: 'failed', id, stage: 'protocol', ...describe(error) });
    } catch {
      // Nothing more can be said to the parent about this message.
    }
  }
}

async function handle(message: ParentMessage): Promise<void> {
  const v = WORKER_PROTOCOL_VERSION;
  // The union says v is always current; a stale script on the other side may still send another.
  const received: unknown = (message as { v: unknown }).v;
  if (received !== v) {
    const id = (message as { id: number }).id;
    reply({
      v,
      type: 'failed',
      id,
      stage: 'protocol',
      message: `Worker speaks protocol ${v}, got ${String(received)}.`,
    });
    return;
  }
  switch (message.type) {
    case 'load-model':
      try {
        if (!sessions.has(message.sha))
          sessions.set(message.sha, createSession(message.path, message.threads));
        reply({ v, type: 'done', id: message.id });
      } catch (error) {
        const reason = error instanceof Error ? error.message : String(error);
        reply({ v, type: 'failed', id: message.id, stage: 'load', message: `${message.label}: ${reason}` });
      }
      return;
    case 'unload-model': {
      const session = sessions.get(message.sha);
      sessions.delete(message.sha);
      try {
        session?.release();
        reply({ v, type: 'done', id: message.id });
      } catch (error) {
        // Forgotten either way: no later run takes a session the runtime could not release.
        reply({ v, type: 'failed', id: message.id, stage: 'load', ...describe(error) });
      }
      return;
    }
    case 'plan':
      plans.set(message.plan, message.steps);
      reply({ v, type: 'done', id: message.id });
      return;
    case 'forget-plan':
      plans.delete(message.plan);
      reply({ v, type: 'done', id: message.id });
      return;
    case 'validate':
      try {
        createSession(message.model, 1).release();
        reply({ v, type: 'validated', id: message.id });
      } catch (error) {
        reply({ v, type: 'failed', id: message.id, stage: 'validate', ...describe(error) });
      }
      return;
    case 'infer-records':
      try {
        const { parts, runs } = await inferRecords(message);
        const transfer: ArrayBuffer[] = [];
        for (const part of parts) {
          if (part.status === 'done') {
            for (const buffer of transferList(part.outputs))
              if (!transfer.includes(buffer)) transfer.push(buffer);
            collectBuffers(part.table.batches.flat(), transfer);
          }
        }
        reply({ v, type: 'records-result', id: message.id, parts, runs }, transfer);
      } catch (error) {
        reply({ v, type: 'failed', id: message.id, stage: 'infer', ...describe(error) });
      }
      return;
    case 'probe':
      probe(message);
      return;
    case 'leave':
      leave();
      return;
    case 'infer':
      try {
        const started = performance.now();
        const outputs = runPipeline(stepsOf(message.plan), message.feeds, message.rows);
        const runUs = Math.round((performance.now() - started) * 1000);
        reply({ v, type: 'result', id: message.id, outputs, runUs }, transferList(outputs));
      } catch (error) {
        reply({ v, type: 'failed', id: message.id, stage: 'infer', ...describe(error) });
      }
      return;
    default: {
      // The union says nothing else arrives; a newer parent of the same protocol version might.
      const unknown = message as { type: unknown; id: number };
      reply({
        v,
        type: 'failed',
        id: unknown.id,
        stage: 'protocol',
        message: `Worker does not know the message type ${JSON.stringify(unknown.type)}.`,
      });
      return;
    }
  }
}

/**
 * `leave`: releases every session (a release that throws leaves the others to be released),
 * then ends this thread from JavaScript, where it is, rather than being terminated by its parent
 * wherever it might be (inside onnxruntime, `Worker.terminate()` aborts the process).
 */
function leave(): never {
  leaving = true;
  for (const session of sessions.values()) {
    try {
      session.release();
    } catch {
      // The thread ends anyway; its environment's teardown frees what is left.
    }
  }
  sessions.clear();
  plans.clear();
  process.exit(0);
}

/**
 * `probe`: the admission probe of inline runs (`probePipeline`): the work bound, then sessions
 * of its own (one intra-op thread, as the calling thread's `InlineSessions` make them) created
 * from the bytes the parent read and released whatever happens, then the timed runs. A run that
 * throws answers `infer` (the parent refuses the pipeline); so does a probe the parent stopped
 * (`PROBE_CONTROL.stop`: before its next load or run), after which this thread is idle.
 */
function probe(message: Extract<ParentMessage, { type: 'probe' }>): void {
  const v = WORKER_PROTOCOL_VERSION;
  try {
    const files = new Map(message.models.map((model) => [model.sha, model.bytes] as const));
    const report = probePipeline(
      message.steps,
      files,
      message.settings,
      (bytes) => createSession(bytes, 1),
      message.control,
    );
    reply({ v, type: 'probed', id: message.id, report });
  } catch (error) {
    reply({ v, type: 'failed', id: message.id, stage: 'infer', ...describe(error) });
  }
}

/**
 * The scan's float64 columns (the ones echoed back) in buffers the parent sent back once it no
 * longer read them, so that no request brings a new buffer into the parent's isolate.
 */
const echoColumns: ColumnAllocator = {
  float64: (length) => new Float64Array(echoBuffers.take(length * 8), 0, length),
  free: (values) => echoBuffers.give(values.buffer as ArrayBuffer),
};

/** Gives a decoded table's buffers back to this worker's pool (a body refused or failed after its decode). */
function reuseTable(table: TransferredTable): void {
  const buffers: ArrayBuffer[] = [];
  collectBuffers(table.batches.flat(), buffers);
  for (const buffer of buffers) echoBuffers.give(buffer);
}

/** A body decoded and checked, waiting for its run. */
interface DecodedBody {
  index: number;
  table: TransferredTable;
  feeds: WireTensor[];
  rows: number;
  key: string;
}

/**
 * `infer-records`: decodes and checks every body first (the parent's deadline watches this part
 * through `progress`), then runs the accepted ones, merging neighbours that share a feed layout.
 */
async function inferRecords(
  message: Extract<ParentMessage, { type: 'infer-records' }>,
): Promise<{ parts: RecordsPart[]; runs: number[] }> {
  // Buffers of earlier answers the parent is done with.
  for (const buffer of message.recycled ?? []) echoBuffers.give(buffer);
  const steps = stepsOf(message.plan);
  const first = steps[0]!.spec;
  const parts: RecordsPart[] = [];
  const decoded: DecodedBody[] = [];
  try {
    for (const [index, body] of message.bodies.entries()) {
      // Each body has its own deadline, from its own start (the parent reads this).
      progress.begin(message.id, index);
      let table: TransferredTable | null = null;
      try {
        // What the decode pool does (the float64 columns, which the answer and the log echo:
        // the plain shape read from the bytes, any other body parsed the general way), then the
        // feeds cast from those columns, with the checks buildFeeds makes for a body parsed on
        // the HTTP thread, strict numbers included.
        table = jsonRecordsToTable(body, echoColumns);
        const rows = table.batches[0]![0]!.length;
        const columns = table.fields.map((field) => field.name);
        const feeds = buildFeedsFromRecordColumns(
          table,
          bindColumns(columns, first.inputs, first.tensorFields),
        );
        parts.push({ status: 'done', table, outputs: [] });
        decoded.push({ index, table, feeds, rows, key: feedLayoutKey(feeds) });
      } catch (error) {
        if (table !== null) reuseTable(table);
        parts.push({ status: 'refused', error: toErrorOutcome(error) });
      }
    }
  } finally {
    progress.end(message.id);
  }
  const runs: number[] = [];
  let at = 0;
  while (at < decoded.length) {
    // The same grouping as the parent's dynamic batching: same layout, each body at most
    // maxMergeRows, the run at most maxBatchRows.
    const group = [decoded[at]!];
    let total = group[0]!.rows;
    at++;
    if (total <= message.maxMergeRows) {
      while (at < decoded.length) {
        const next = decoded[at]!;
        if (next.key !== group[0]!.key || next.rows > message.maxMergeRows) break;
        if (total + next.rows > message.maxBatchRows) break;
        group.push(next);
        total += next.rows;
        at++;
      }
    }
    for (const [body, outcome] of runGroup(steps, group, total, runs)) {
      if (Array.isArray(outcome)) parts[body.index] = { status: 'done', table: body.table, outputs: outcome };
      else {
        reuseTable(body.table);
        parts[body.index] = { status: 'failed', ...outcome };
      }
    }
  }
  return { parts, runs };
}

/** A body's outputs, or why the runtime failed on it. */
type RunOutcome = WireTensor[] | { message: string; step?: number };

/**
 * Runs a group of decoded bodies as one run. When the merged run fails, or its outputs are not
 * one row per input row (a model that aggregates over the batch), each body runs on its own, so
 * a body's answer never depends on its neighbours: a failure is reported only for the bodies
 * that fail alone.
 */
function runGroup(
  steps: LoadedStep[],
  group: DecodedBody[],
  total: number,
  runs: number[],
): [DecodedBody, RunOutcome][] {
  if (group.length > 1) {
    const feeds = mergeFeeds(
      group.map((body) => body.feeds),
      total,
    );
    runs.push(total);
    let outputs: WireTensor[] | null = null;
    try {
      outputs = runPipeline(steps, feeds, total);
    } catch {
      // One of them (at least) fails: find which by running each alone, below.
    }
    if (outputs && outputs.every((output) => output.dims[0] === total)) {
      const split: [DecodedBody, RunOutcome][] = [];
      let start = 0;
      for (const body of group) {
        split.push([body, sliceRows(outputs, start, body.rows)]);
        start += body.rows;
      }
      return split;
    }
  }
  const alone: [DecodedBody, RunOutcome][] = [];
  for (const body of group) {
    runs.push(body.rows);
    try {
      alone.push([body, runPipeline(steps, body.feeds, body.rows)]);
    } catch (error) {
      alone.push([body, describe(error)]);
    }
  }
  return alone;
}

/** Rows [start, start+rows) of every output, each in a buffer of its own (each part is transferred on its own). */
function sliceRows(outputs: readonly WireTensor[], start: number, rows: number): WireTensor[] {
  return outputs.map((output) => {
    const width = rowWidth(output.dims);
    return {
      ...output,
      dims: [rows, ...output.dims.slice(1)],
      data: output.data.slice(start * width, (start + rows) * width),
    };
  });
}

/** The plan's steps with their sessions; the parent loads every model before it sends a run. */
function stepsOf(plan: string): LoadedStep[] {
  const specs = plans.get(plan);
  if (!specs) throw new Error(`the worker has no pipeline plan "${plan}"`);
  return specs.map((spec, index) => {
    const session = sessions.get(spec.sha);
    if (!session) throw new StepError(index, `${spec.label}: the model is not loaded in this worker`);
    return { spec, session };
  });
}

function describe(error: unknown): { message: string; step?: number } {
  const message = error instanceof Error ? error.message : String(error);
  return error instanceof StepError ? { message, step: error.step } : { message };
}

// Every module of this thread is loaded, the runtime's binding among them: from now on the
// parent may stop this thread wherever it knows it runs JavaScript (`WORKER_LIFE`).
if (life) Atomics.store(life, 0, WORKER_LIFE.started);
