import * as ort from 'onnxruntime-node';
import type { NativeSession } from './native-session.js';
import { castTensorData, concatTensorData, rowWidth } from './tensor-data.js';
import type { WireTensor } from './tensor-data.js';
import type { WorkerStepSpec } from './worker-protocol.js';

/** A step of a pipeline plan with its session. */
export interface LoadedStep {
  spec: WorkerStepSpec;
  session: NativeSession;
}

/** Thrown by {@link runPipeline} to say which step failed. */
export class StepError extends Error {
  constructor(
    readonly step: number,
    message: string,
  ) {
    super(message);
  }
}

/** Runs a plan's steps one after the other on the calling thread, each step's outputs feeding the next. */
export function runPipeline(steps: LoadedStep[], feeds: WireTensor[], rows: number): WireTensor[] {
  let current = feeds;
  for (const [index, step] of steps.entries()) {
    const inputs = index === 0 ? current : chainFeeds(step.spec, current, rows);
    try {
      current = step.spec.single ? runRowByRow(step, inputs, rows) : runOnce(step, inputs);
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

function runOnce(step: LoadedStep, inputs: WireTensor[]): WireTensor[] {
  const feeds: Record<string, ort.Tensor> = {};
  for (const input of inputs) feeds[input.name] = new ort.Tensor(input.type, input.data, input.dims);
  const results = step.session.run(feeds);
  return step.session.outputNames.map((name) => {
    const tensor = results[name];
    if (!tensor) throw new Error(`the model returned no output "${name}"`);
    return {
      name,
      type: tensor.type as WireTensor['type'],
      dims: denseArray(tensor.dims),
      // A string tensor's data comes out holey like its dims; numeric data is a typed array.
      data: Array.isArray(tensor.data) ? denseArray(tensor.data as readonly string[]) : tensor.data,
    };
  });
}

/**
 * A copy of one of onnxruntime's arrays (dims, a string tensor's data) as a packed array.
 * onnxruntime-node hands out holey arrays (and a spread or `slice` of one stays holey); V8's
 * serializer writes a holey array as a sparse one, which the HTTP thread reads back key by key
 * (`ReadSparseJSArray`) in every reply.
 */
function denseArray<T>(values: readonly T[]): T[] {
  const dense: T[] = [];
  for (let i = 0; i < values.length; i++) dense.push(values[i]!);
  return dense;
}

/** `batchConfig: 'single'`: one run per row with a batch of 1, outputs concatenated along rows. */
function runRowByRow(step: LoadedStep, inputs: WireTensor[], rows: number): WireTensor[] {
  const perRow: WireTensor[][] = [];
  for (let row = 0; row < rows; row++) {
    perRow.push(
      runOnce(
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
