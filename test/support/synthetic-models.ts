/**
 * ONNX models the project makes for itself with `onnx-proto`, so tests and benchmarks
 * run without the tutorial's files. Every builder is deterministic for its parameters.
 */
import onnxProto from 'onnx-proto';
import type { onnx as Onnx } from 'onnx-proto';
import { int, ints } from './onnx-attributes.js';
import {
  encodeModel,
  TREE_ENSEMBLE_OPSETS,
  treeEnsembleRegressor,
  valueInfo,
  type GraphParts,
} from './onnx-graph.js';
import { HOUSE_FEATURE_RANGES, mulberry32 } from './synthetic-data.js';

const { onnx } = onnxProto;
const { AttributeType } = onnx.AttributeProto;
const { DataType } = onnx.TensorProto;

/** Options of {@link makeTreeEnsembleRegressor}. */
export interface TreeEnsembleOptions {
  /** Input width. @default 18 */
  features?: number;
  /** Number of trees. @default 10 */
  trees?: number;
  /** Depth of every (full binary) tree. @default 4 */
  depth?: number;
  /** Seed of the thresholds, features and leaf values. @default 1 */
  seed?: number;
  /** @default 'float_input' */
  inputName?: string;
  /** @default 'variable' */
  outputName?: string;
}

/**
 * An `ai.onnx.ml` TreeEnsembleRegressor shaped like the tutorial's house-price model:
 * float32 [N, features] → float32 [N, 1], outputs between about 200k and 2M on house-like rows.
 */
export function makeTreeEnsembleRegressor(options: TreeEnsembleOptions = {}): Uint8Array {
  const {
    features = 18,
    trees = 10,
    depth = 4,
    seed = 1,
    inputName = 'float_input',
    outputName = 'variable',
  } = options;
  const random = mulberry32(seed);
  const nodes = {
    treeIds: [] as number[],
    nodeIds: [] as number[],
    featureIds: [] as number[],
    modes: [] as string[],
    values: [] as number[],
    trueIds: [] as number[],
    falseIds: [] as number[],
  };
  const targets = {
    treeIds: [] as number[],
    nodeIds: [] as number[],
    weights: [] as number[],
  };
  const internal = 2 ** depth - 1;
  const total = 2 ** (depth + 1) - 1;
  // Each tree adds up to 1.8M / trees on top of a 200k base, so sums stay house-priced.
  const leafMax = 1_800_000 / trees;
  for (let tree = 0; tree < trees; tree++) {
    for (let node = 0; node < total; node++) {
      nodes.treeIds.push(tree);
      nodes.nodeIds.push(node);
      if (node < internal) {
        const feature = Math.floor(random() * features);
        const [low, high] = HOUSE_FEATURE_RANGES[feature % HOUSE_FEATURE_RANGES.length] ?? [0, 1];
        nodes.featureIds.push(feature);
        nodes.modes.push('BRANCH_LEQ');
        nodes.values.push(low + (high - low) * (0.2 + 0.6 * random()));
        nodes.trueIds.push(2 * node + 1);
        nodes.falseIds.push(2 * node + 2);
      } else {
        nodes.featureIds.push(0);
        nodes.modes.push('LEAF');
        nodes.values.push(0);
        nodes.trueIds.push(0);
        nodes.falseIds.push(0);
        targets.treeIds.push(tree);
        targets.nodeIds.push(node);
        targets.weights.push(Math.round(leafMax * random() * 100) / 100);
      }
    }
  }
  const node = treeEnsembleRegressor(
    inputName,
    outputName,
    {
      ...nodes,
      targetTreeIds: targets.treeIds,
      targetNodeIds: targets.nodeIds,
      targetWeights: targets.weights,
      baseValues: [200_000],
    },
    'tree_ensemble',
  );
  return synthetic({
    nodes: [node],
    inputs: [valueInfo(inputName, DataType.FLOAT, ['N', features])],
    outputs: [valueInfo(outputName, DataType.FLOAT, ['N', 1])],
    opsets: TREE_ENSEMBLE_OPSETS,
  });
}

/**
 * Two inputs, two outputs: `a` float32 [N,3] and `b` float32 [N,2] →
 * `sum_a` float32 [N,1] (row sums of a) and `scaled_b` float32 [N,2] (b × 2).
 */
export function makeMultiIoModel(): Uint8Array {
  return synthetic({
    nodes: [
      onnx.NodeProto.create({
        opType: 'ReduceSum',
        input: ['a', 'axes'],
        output: ['sum_a'],
        attribute: [int('keepdims', 1)],
      }),
      onnx.NodeProto.create({ opType: 'Mul', input: ['b', 'two'], output: ['scaled_b'] }),
    ],
    initializers: [int64Tensor('axes', [1], [1]), floatTensor('two', [2], [])],
    inputs: [valueInfo('a', DataType.FLOAT, ['N', 3]), valueInfo('b', DataType.FLOAT, ['N', 2])],
    outputs: [valueInfo('sum_a', DataType.FLOAT, ['N', 1]), valueInfo('scaled_b', DataType.FLOAT, ['N', 2])],
  });
}

/** Options of {@link makeScaleModel}. */
export interface ScaleModelOptions {
  /** @default 'tensor' */
  inputName?: string;
  /** ONNX names are single-assignment, so the output cannot reuse the input's name. @default 'scaled' */
  outputName?: string;
  /** @default 18 */
  width?: number;
  /** @default 2 */
  factor?: number;
  /**
   * Also list the factor initializer as a graph input (the IR < 4 style), to prove inspection
   * leaves initializers out of the inputs. @default false
   */
  initializerAsInput?: boolean;
}

/** float32 [N, width] → float32 [N, width], every value times `factor` (chains with other models by name). */
export function makeScaleModel(options: ScaleModelOptions = {}): Uint8Array {
  const {
    inputName = 'tensor',
    outputName = 'scaled',
    width = 18,
    factor = 2,
    initializerAsInput = false,
  } = options;
  const inputs = [valueInfo(inputName, DataType.FLOAT, ['N', width])];
  if (initializerAsInput) inputs.push(valueInfo('factor', DataType.FLOAT, []));
  return synthetic({
    nodes: [onnx.NodeProto.create({ opType: 'Mul', input: [inputName, 'factor'], output: [outputName] })],
    initializers: [floatTensor('factor', [factor], [])],
    inputs,
    outputs: [valueInfo(outputName, DataType.FLOAT, ['N', width])],
  });
}

/**
 * float32 `f32` [N, width] and float64 `f64` [N, width] → `o32` and `o64`, each its input
 * unchanged (Identity): what a model received, read back from its outputs. With tensorFields
 * naming one column for both, that column feeds a float32 and a float64 input at once.
 */
export function makeFloat32Float64IdentityModel(width = 3): Uint8Array {
  return synthetic({
    nodes: [
      onnx.NodeProto.create({ opType: 'Identity', input: ['f32'], output: ['o32'] }),
      onnx.NodeProto.create({ opType: 'Identity', input: ['f64'], output: ['o64'] }),
    ],
    inputs: [valueInfo('f32', DataType.FLOAT, ['N', width]), valueInfo('f64', DataType.DOUBLE, ['N', width])],
    outputs: [
      valueInfo('o32', DataType.FLOAT, ['N', width]),
      valueInfo('o64', DataType.DOUBLE, ['N', width]),
    ],
  });
}

/** Options of {@link makeInt64SumModel}. */
export interface Int64SumModelOptions {
  /** @default 'x' */
  inputName?: string;
  /** @default 'sum' */
  outputName?: string;
  /** @default 3 */
  width?: number;
}

/** int64 [N, width] → int64 [N, 1] row sums: proves numbers are cast to int64 and int64 outputs come back. */
export function makeInt64SumModel(options: Int64SumModelOptions = {}): Uint8Array {
  const { inputName = 'x', outputName = 'sum', width = 3 } = options;
  return synthetic({
    nodes: [
      onnx.NodeProto.create({
        opType: 'ReduceSum',
        input: [inputName, 'axes'],
        output: [outputName],
        attribute: [int('keepdims', 1)],
      }),
    ],
    initializers: [int64Tensor('axes', [1], [1])],
    inputs: [valueInfo(inputName, DataType.INT64, ['N', width])],
    outputs: [valueInfo(outputName, DataType.INT64, ['N', 1])],
  });
}

/**
 * float32 [N, 1] → float32 [N, 1], the input unchanged, whose run time the input chooses: it
 * also multiplies two k × k matrices, k the largest input value (0 or 1: microseconds; 2000:
 * a hundred milliseconds or more on one core). The model a request can make slow, for tests of what a
 * slow run must not hold up.
 */
export function makeSlowOnDemandModel(): Uint8Array {
  const node = (opType: string, input: string[], output: string, attribute: Onnx.IAttributeProto[] = []) =>
    onnx.NodeProto.create({ opType, input, output: [output], attribute });
  return synthetic({
    nodes: [
      node('Cast', ['x'], 'xi', [int('to', DataType.INT64)]),
      node('ReduceMax', ['xi'], 'k0', [int('keepdims', 0)]),
      node('Reshape', ['k0', 'one'], 'k'),
      node('Concat', ['k', 'k'], 'kk', [int('axis', 0)]),
      node('ConstantOfShape', ['kk'], 'square', [
        onnx.AttributeProto.create({
          name: 'value',
          type: AttributeType.TENSOR,
          t: floatTensor('value', [1], [1]),
        }),
      ]),
      node('MatMul', ['square', 'square'], 'product'),
      node('ReduceSum', ['product'], 'total', [int('keepdims', 0)]),
      node('Mul', ['total', 'zero'], 'nothing'),
      node('Add', ['x', 'nothing'], 'y'),
    ],
    initializers: [int64Tensor('one', [1], [1]), floatTensor('zero', [0], [])],
    inputs: [valueInfo('x', DataType.FLOAT, ['N', 1])],
    outputs: [valueInfo('y', DataType.FLOAT, ['N', 1])],
  });
}

/**
 * int64 [N, 1] indices → float32 [N, 1]: the entry of a table of four values (10, 20, 30, 40)
 * at each index (`Gather`; -4 to -1 count from the end). Any other index fails the run in
 * onnxruntime: the model a request can make fail, cheaply (its work is small and bounded).
 */
export function makeTableLookupModel(): Uint8Array {
  return synthetic({
    nodes: [
      onnx.NodeProto.create({
        opType: 'Gather',
        input: ['table', 'index'],
        output: ['value'],
        attribute: [int('axis', 0)],
      }),
    ],
    initializers: [floatTensor('table', [10, 20, 30, 40], [4])],
    inputs: [valueInfo('index', DataType.INT64, ['N', 1])],
    outputs: [valueInfo('value', DataType.FLOAT, ['N', 1])],
  });
}

/**
 * The model of the Open Inference Protocol's own request examples: `input0` uint32 [N, 2] and
 * `input1` bool [N] → `output0` float32 [N, 2] (input0 as floats) and `output1` bool [N]
 * (not input1).
 */
export function makeOpenInferenceExampleModel(): Uint8Array {
  return synthetic({
    nodes: [
      onnx.NodeProto.create({
        opType: 'Cast',
        input: ['input0'],
        output: ['output0'],
        attribute: [int('to', DataType.FLOAT)],
      }),
      onnx.NodeProto.create({ opType: 'Not', input: ['input1'], output: ['output1'] }),
    ],
    inputs: [valueInfo('input0', DataType.UINT32, ['N', 2]), valueInfo('input1', DataType.BOOL, ['N'])],
    outputs: [valueInfo('output0', DataType.FLOAT, ['N', 2]), valueInfo('output1', DataType.BOOL, ['N'])],
  });
}

/**
 * float16 [N] → float32 [N] (`h` cast to float): a model Quoll deploys but whose input no
 * request can feed (Quoll feeds no float16 input), to prove each request format refuses it.
 */
export function makeFloat16InputModel(): Uint8Array {
  return synthetic({
    nodes: [
      onnx.NodeProto.create({
        opType: 'Cast',
        input: ['h'],
        output: ['f'],
        attribute: [int('to', DataType.FLOAT)],
      }),
    ],
    inputs: [valueInfo('h', DataType.FLOAT16, ['N'])],
    outputs: [valueInfo('f', DataType.FLOAT, ['N'])],
  });
}

/**
 * Models a workspace user could craft to make one small run slow, each float32 [N, M] → float32
 * [N, M] (the input plus zero), whose work grows with the square or cube of the values fed, M
 * free: the kinds an operator allowlist let through (issue 10). `kind`:
 * - `broadcast`: the input as a column plus the input as a row, `[E,1] + [1,E]`, summed (E²);
 * - `self-product`: the input as a column times its transpose, that square times itself (E³);
 * - `gather`: the input as one row, gathered at E zeros taken from the input, summed (E²).
 */
export function makeCraftedSlowModel(kind: 'broadcast' | 'self-product' | 'gather'): Uint8Array {
  const node = (opType: string, input: string[], output: string, attribute: Onnx.IAttributeProto[] = []) =>
    onnx.NodeProto.create({ opType, input, output: [output], attribute });
  const big: Onnx.INodeProto[] =
    kind === 'broadcast'
      ? [
          node('Reshape', ['x', 'column'], 'col'),
          node('Reshape', ['x', 'row'], 'line'),
          node('Add', ['col', 'line'], 'big'),
        ]
      : kind === 'self-product'
        ? [
            node('Reshape', ['x', 'column'], 'col'),
            node('Transpose', ['col'], 'line', [ints('perm', [1, 0])]),
            node('MatMul', ['col', 'line'], 'square'),
            node('MatMul', ['square', 'square'], 'big'),
          ]
        : [
            node('Reshape', ['x', 'row'], 'line'),
            node('Reshape', ['x', 'flat'], 'values'),
            node('Mul', ['values', 'zero'], 'zeros'),
            node('Cast', ['zeros'], 'indices', [int('to', DataType.INT64)]),
            node('Gather', ['line', 'indices'], 'big', [int('axis', 0)]),
          ];
  return synthetic({
    nodes: [
      ...big,
      node('ReduceSum', ['big'], 'total', [int('keepdims', 0)]),
      node('Mul', ['total', 'zero'], 'nothing'),
      node('Add', ['x', 'nothing'], 'y'),
    ],
    initializers: [
      int64Tensor('column', [-1, 1], [2]),
      int64Tensor('row', [1, -1], [2]),
      int64Tensor('flat', [-1], [1]),
      floatTensor('zero', [0], []),
    ],
    inputs: [valueInfo('x', DataType.FLOAT, ['N', 'M'])],
    outputs: [valueInfo('y', DataType.FLOAT, ['N', 'M'])],
  });
}

function floatTensor(name: string, values: number[], dims: number[]): Onnx.ITensorProto {
  return onnx.TensorProto.create({ name, dataType: DataType.FLOAT, dims, floatData: values });
}

function int64Tensor(name: string, values: number[], dims: number[]): Onnx.ITensorProto {
  return onnx.TensorProto.create({ name, dataType: DataType.INT64, dims, int64Data: values });
}

function synthetic(parts: GraphParts): Uint8Array {
  return encodeModel(parts, { producerName: 'quoll-synthetic', graphName: 'synthetic' });
}
