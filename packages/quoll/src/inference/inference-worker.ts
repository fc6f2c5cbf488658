/**
 * The inference worker: a worker_threads entry of the server's shared pool. It holds one
 * onnxruntime session per model (by SHA), shared by every pipeline plan that uses the model,
 * and runs requests one after another, so the server's event loop never runs a model.
 * Importing this file outside a worker does nothing.
 */
import { parentPort, workerData } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import { toErrorOutcome } from '../errors/index.js';
import { jsonRecordsToTable } from './decode/scan-records.js';
import type { ColumnAllocator } from './decode/scan-records.js';
import { collectBuffers } from './decode/transferred-table.js';
import type { TransferredTable } from './decode/transferred-table.js';
import { bindColumns, buildFeedsFromRecordColumns } from './input-binding.js';
import {
  castTensorData,
  concatTensorData,
  feedLayoutKey,
  mergeFeeds,
  rowWidth,
  transferList,
} from './tensor-data.js';
import type { WireTensor } from './tensor-data.js';
import { DecodeProgress } from './decode-progress.js';
import { echoBuffers } from './echo-buffers.js';
import { WORKER_PROTOCOL_VERSION } from './worker-protocol.js';
import type { ParentMessage, RecordsPart, WorkerMessage, WorkerStepSpec } from './worker-protocol.js';

interface LoadedStep {
  spec: WorkerStepSpec;
  session: ort.InferenceSession;
}

/** Thrown inside the worker to say which step failed. */
class StepError extends Error {
  constructor(
    readonly step: number,
    message: string,
  ) {
    super(message);
  }
}

const port = parentPort;
/** Sessions by model SHA. */
const sessions = new Map<string, ort.InferenceSession>();
/** Pipeline plans by key. */
const plans = new Map<string, WorkerStepSpec[]>();
// Requests run strictly one at a time: onnxruntime already uses the core, and overlapping
// runs would only make each request slower.
let queue: Promise<void> = Promise.resolve();
/** Where this worker tells the parent which JSON body it is decoding (see {@link DecodeProgress}). */
const progress = new DecodeProgress(
  (workerData as { progress?: SharedArrayBuffer } | null)?.progress ?? new SharedArrayBuffer(24),
);

if (port) {
  port.on('message', (message: ParentMessage) => {
    queue = queue.then(() => handle(message));
  });
}

function reply(message: WorkerMessage, transfer: ArrayBuffer[] = []): void {
  port?.postMessage(message, transfer);
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
          sessions.set(message.sha, await createSession(message.path, message.threads));
        reply({ v, type: 'done', id: message.id });
      } catch (error) {
        const reason = error instanceof Error ? error.message : String(error);
        reply({ v, type: 'failed', id: message.id, stage: 'load', message: `${message.label}: ${reason}` });
      }
      return;
    case 'unload-model': {
      const session = sessions.get(message.sha);
      sessions.delete(message.sha);
      await session?.release();
      reply({ v, type: 'done', id: message.id });
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
        const session = await createSession(message.model, 1);
        await session.release();
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
    case 'infer':
      try {
        const outputs = await runPipeline(stepsOf(message.plan), message.feeds, message.rows);
        reply({ v, type: 'result', id: message.id, outputs }, transferList(outputs));
      } catch (error) {
        reply({ v, type: 'failed', id: message.id, stage: 'infer', ...describe(error) });
      }
      return;
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
    for (const [body, outcome] of await runGroup(steps, group, total, runs)) {
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
async function runGroup(
  steps: LoadedStep[],
  group: DecodedBody[],
  total: number,
  runs: number[],
): Promise<[DecodedBody, RunOutcome][]> {
  if (group.length > 1) {
    const feeds = mergeFeeds(
      group.map((body) => body.feeds),
      total,
    );
    runs.push(total);
    let outputs: WireTensor[] | null = null;
    try {
      outputs = await runPipeline(steps, feeds, total);
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
      alone.push([body, await runPipeline(steps, body.feeds, body.rows)]);
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

function createSession(model: string | Uint8Array, threads: number): Promise<ort.InferenceSession> {
  const options: ort.InferenceSession.SessionOptions = {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  };
  return typeof model === 'string'
    ? ort.InferenceSession.create(model, options)
    : ort.InferenceSession.create(model, options);
}

async function runPipeline(steps: LoadedStep[], feeds: WireTensor[], rows: number): Promise<WireTensor[]> {
  let current = feeds;
  for (const [index, step] of steps.entries()) {
    const inputs = index === 0 ? current : chainFeeds(step.spec, current, rows);
    try {
      current = step.spec.single ? await runRowByRow(step, inputs, rows) : await runOnce(step, inputs);
    } catch (error) {
      throw new StepError(
        index,
        `${step.spec.label}: ${error instanceof Error ? error.message : String(error)}`,
      );
    }
  }
  return current;
}

/** Picks and casts the previous step's outputs into this step's inputs, as planned at deploy. */
function chainFeeds(spec: WorkerStepSpec, previous: WireTensor[], rows: number): WireTensor[] {
  return spec.inputs.map((input, i) => {
    const source = previous.find((tensor) => tensor.name === spec.feedsFrom?.[i]);
    if (!source) throw new Error(`no output feeds input "${input.name}"`);
    // A [N,1] output may feed a [N] input (or the reverse): keep the row count, take the declared rest.
    const declaredRest = input.shape.slice(1);
    const fixed = declaredRest.every((dim): dim is number => typeof dim === 'number');
    const dims =
      input.shape.length > 0 && fixed && declaredRest.reduce((a, b) => a * b, 1) === rowWidth(source.dims)
        ? [rows, ...declaredRest]
        : source.dims;
    return {
      name: input.name,
      type: input.type,
      dims,
      data: castTensorData(source.data, input.type, source.name),
    };
  });
}

async function runOnce(step: LoadedStep, inputs: WireTensor[]): Promise<WireTensor[]> {
  const feeds: Record<string, ort.Tensor> = {};
  for (const input of inputs) feeds[input.name] = new ort.Tensor(input.type, input.data, input.dims);
  const results = await step.session.run(feeds);
  return step.session.outputNames.map((name) => {
    const tensor = results[name];
    if (!tensor) throw new Error(`the model returned no output "${name}"`);
    return {
      name,
      type: tensor.type as WireTensor['type'],
      dims: [...tensor.dims],
      data: tensor.data,
    };
  });
}

/** `batchConfig: 'single'`: one run per row with a batch of 1, outputs concatenated along rows. */
async function runRowByRow(step: LoadedStep, inputs: WireTensor[], rows: number): Promise<WireTensor[]> {
  const perRow: WireTensor[][] = [];
  for (let row = 0; row < rows; row++) {
    perRow.push(
      await runOnce(
        step,
        inputs.map((input) => {
          const width = rowWidth(input.dims);
          return {
            ...input,
            dims: [1, ...input.dims.slice(1)],
            data: input.data.slice(row * width, (row + 1) * width),
          };
        }),
      ),
    );
  }
  const first = perRow[0] ?? [];
  return first.map((output, o) => {
    const parts = perRow.map((outputs) => outputs[o]!.data);
    return { ...output, dims: [rows, ...output.dims.slice(1)], data: concatTensorData(parts) };
  });
}
