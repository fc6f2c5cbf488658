/**
 * Models a workspace user could craft against inline runs (the review of lane `inline`, 4
 * December): each passes the static work bound (`boundModelWork`, 2^20) and is meant to pass
 * the admission probe too, while some run of it (or its load) holds the thread it runs on.
 */
import onnxProto from 'onnx-proto';
import type { onnx as Onnx } from 'onnx-proto';
import { int } from './onnx-attributes.js';
import {
  encodeModel,
  node,
  TREE_ENSEMBLE_OPSETS,
  treeEnsembleRegressor,
  valueInfo,
  type GraphParts,
} from './onnx-graph.js';

const { onnx } = onnxProto;
const { DataType } = onnx.TensorProto;

/**
 * One decision tree, float32 [N, 1] → float32 [N, 1], whose probed rows all leave within two
 * nodes while rows whose feature is within (`low`, `high`] walk a chain of `depth` nodes:
 * - node 0: `x > high` (NaN tracks true) → a leaf: NaN, positive random and large values leave;
 * - node 1: `x <= low` → a leaf: zeros, negatives, subnormals, -large leave;
 * - then the chain, each node `x <= low` → a leaf of its own, else the next one.
 * Every probe pattern (0, ±1e-4..1e4 random, ±3e38, ±1e-40, -(1..1e6), NaN) leaves at once with
 * `low` = 1e-30 and `high` = 2e-30; a value such as 1.5e-30, which the probe never feeds, walks
 * the whole chain. Every branch has a leaf of its own (onnxruntime 1.30 lays each tree out
 * depth first and refuses shared nodes). `rows` fixes the input's first dimension (1: the
 * bound counts one row, so the chain may be 64 times deeper within the same bound); 0 leaves it free.
 */
export function makeDeepChainTree(options: {
  depth: number;
  /** Trees, each such a chain (their depths add up in the bound). @default 1 */
  trees?: number;
  low?: number;
  high?: number;
  rows?: number;
}): Uint8Array {
  const { depth, trees = 1, low = 1e-30, high = 2e-30, rows = 0 } = options;
  const treeIds: number[] = [];
  const nodeIds: number[] = [];
  const featureIds: number[] = [];
  const modes: string[] = [];
  const values: number[] = [];
  const trueIds: number[] = [];
  const falseIds: number[] = [];
  const missingTrue: number[] = [];
  const leafTrees: number[] = [];
  const leaves: number[] = [];
  for (let tree = 0; tree < trees; tree++) {
    const base = treeIds.length;
    let next = 0;
    const push = (mode: string, value: number, missing = 0): number => {
      const id = next++;
      treeIds.push(tree);
      nodeIds.push(id);
      featureIds.push(0);
      modes.push(mode);
      values.push(value);
      trueIds.push(0);
      falseIds.push(0);
      missingTrue.push(missing);
      if (mode === 'LEAF') {
        leafTrees.push(tree);
        leaves.push(id);
      }
      return id;
    };
    const branch = (id: number, onTrue: number, onFalse: number): void => {
      trueIds[base + id] = onTrue;
      falseIds[base + id] = onFalse;
    };
    const root = push('BRANCH_GT', high, 1);
    const exit0 = push('LEAF', 0);
    const second = push('BRANCH_LEQ', low);
    branch(root, exit0, second);
    let at = second;
    let onTrue = push('LEAF', 0);
    for (let i = 0; i < depth; i++) {
      const chain = push('BRANCH_LEQ', low);
      branch(at, onTrue, chain);
      at = chain;
      onTrue = push('LEAF', 0);
    }
    branch(at, onTrue, push('LEAF', 0));
  }
  const tree = treeEnsembleRegressor('x', 'y', {
    treeIds,
    nodeIds,
    featureIds,
    modes,
    values,
    trueIds,
    falseIds,
    missingTracksTrue: missingTrue,
    targetTreeIds: leafTrees,
    targetNodeIds: leaves,
    targetWeights: leaves.map((_, i) => (i % 2 === 0 ? 1 : 2)),
  });
  return hostile({
    nodes: [tree],
    inputs: [valueInfo('x', DataType.FLOAT, [rows > 0 ? rows : 'N', 1])],
    outputs: [valueInfo('y', DataType.FLOAT, [rows > 0 ? rows : 'N', 1])],
    opsets: TREE_ENSEMBLE_OPSETS,
  });
}

/**
 * float32 [N, 1] → float32 [N, 1] (the input plus zero), whose every run, of one row or 64,
 * also casts `width` numbers to strings and back: work the bound counts at 64 an element
 * (`STRING_ELEMENT_WORK`) but that does not grow with the rows, so a one-row request costs what
 * the probe's 64-row run did. `width` tunes it to just under the probe's 2 ms.
 */
export function makeRowFreeStringModel(width: number, salt = 0, freeDims = 1): Uint8Array {
  const shape = ['N', ...Array.from({ length: freeDims }, (_, i) => `d${i}`)];
  return hostile({
    nodes: [
      node('ReduceSum', ['x'], ['s'], [int('keepdims', 0)]),
      node('Mul', ['w', 's'], ['ws']),
      node('Cast', ['ws'], ['text'], [int('to', DataType.STRING)]),
      node('Cast', ['text'], ['back'], [int('to', DataType.FLOAT)]),
      node('ReduceSum', ['back'], ['total'], [int('keepdims', 0)]),
      node('Mul', ['total', 'zero'], ['nothing']),
      node('Add', ['x', 'nothing'], ['y']),
    ],
    initializers: [
      onnx.TensorProto.create({
        name: 'w',
        dataType: DataType.FLOAT,
        dims: [width],
        floatData: Array.from({ length: width }, (_, i) => 1 + i / 7 + salt),
      }),
      onnx.TensorProto.create({ name: 'zero', dataType: DataType.FLOAT, dims: [], floatData: [0] }),
    ],
    inputs: [valueInfo('x', DataType.FLOAT, freeDims === 1 ? ['N', 1] : shape)],
    outputs: [valueInfo('y', DataType.FLOAT, freeDims === 1 ? ['N', 1] : shape)],
  });
}

/**
 * A graph of `count` Identity nodes in a chain on float32 [N, 1] (names as short as can be):
 * a model of about 1 MiB at 45 000 nodes, whose bound the walk computes node by node on the
 * calling thread before it refuses it.
 */
export function makeManyNodes(count: number): Uint8Array {
  const name = (i: number): string => `_${i.toString(36)}`;
  const nodes: Onnx.INodeProto[] = [];
  for (let i = 0; i < count; i++) nodes.push(node('Identity', [i === 0 ? 'x' : name(i)], [name(i + 1)]));
  return hostile({
    nodes,
    inputs: [valueInfo('x', DataType.FLOAT, ['N', 1])],
    outputs: [valueInfo(name(count), DataType.FLOAT, ['N', 1])],
  });
}

/**
 * One balanced tree of `depth` levels (2^(depth+1) - 1 nodes): its bound is tiny (a row visits
 * depth + 1 nodes), its file near 1 MiB at depth 14: what onnxruntime builds at session creation.
 */
export function makeBigBalancedTree(depth: number, features = 1): Uint8Array {
  const treeIds: number[] = [];
  const nodeIds: number[] = [];
  const featureIds: number[] = [];
  const modes: string[] = [];
  const values: number[] = [];
  const trueIds: number[] = [];
  const falseIds: number[] = [];
  const leafIds: number[] = [];
  const internal = 2 ** depth - 1;
  const total = 2 ** (depth + 1) - 1;
  for (let id = 0; id < total; id++) {
    treeIds.push(0);
    nodeIds.push(id);
    featureIds.push(id % features);
    if (id < internal) {
      modes.push('BRANCH_LEQ');
      values.push((id % 1000) / 1000);
      trueIds.push(2 * id + 1);
      falseIds.push(2 * id + 2);
    } else {
      modes.push('LEAF');
      values.push(0);
      trueIds.push(0);
      falseIds.push(0);
      leafIds.push(id);
    }
  }
  const tree = treeEnsembleRegressor('x', 'y', {
    treeIds,
    nodeIds,
    featureIds,
    modes,
    values,
    trueIds,
    falseIds,
    targetTreeIds: leafIds.map(() => 0),
    targetNodeIds: leafIds,
    targetWeights: leafIds.map((id) => id % 7),
  });
  return hostile({
    nodes: [tree],
    inputs: [valueInfo('x', DataType.FLOAT, ['N', features])],
    outputs: [valueInfo('y', DataType.FLOAT, ['N', 1])],
    opsets: TREE_ENSEMBLE_OPSETS,
  });
}

/** A model padded to `bytes` or more with an unknown ModelProto field (field 100), which onnxruntime skips. */
export function padModel(model: Uint8Array, bytes: number): Uint8Array {
  const size = Math.max(0, bytes - model.byteLength);
  const length: number[] = [];
  let v = size;
  while (v >= 0x80) {
    length.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  length.push(v);
  return Buffer.concat([model, Buffer.from([0xa2, 0x06]), Buffer.from(length), Buffer.alloc(size)]);
}

/**
 * The value gate of {@link makeGatedFormatModel}: a three-split tree, float32 [N, 1] → [N, 1],
 * 1 for a row whose value is within (`low`, `high`] and 0 for every other value, NaN included.
 */
function gateTree(input: string, output: string, low: number, high: number): Onnx.INodeProto {
  // 0: x > high (NaN tracks true) → leaf 1 (0); else 2: x <= low → leaf 3 (0); else leaf 4 (1).
  return treeEnsembleRegressor(input, output, {
    treeIds: [0, 0, 0, 0, 0],
    nodeIds: [0, 1, 2, 3, 4],
    featureIds: [0, 0, 0, 0, 0],
    modes: ['BRANCH_GT', 'LEAF', 'BRANCH_LEQ', 'LEAF', 'LEAF'],
    values: [high, 0, low, 0, 0],
    trueIds: [1, 0, 3, 0, 0],
    falseIds: [2, 0, 4, 0, 0],
    missingTracksTrue: [1, 0, 0, 0, 0],
    targetTreeIds: [0, 0, 0],
    targetNodeIds: [1, 3, 4],
    targetWeights: [0, 0, 1],
  });
}

/**
 * float32 [N, 1] → `y` float32 [N, 1] (the input unchanged) and `text` string [K]: `K` doubles
 * formatted as strings by a `Cast`, each 0 unless a row of the request is within (1e-30, 2e-30]
 * (a value gate the probe's patterns never open), then `value` (default DBL_MAX, whose
 * formatting costs glibc's printf ~2 µs against ~0.1 µs for 0). The bound counts 64 element
 * operations a formatted number whatever the number: K = 16 000 is within 2^20.
 */
export function makeGatedFormatModel(count: number, value = Number.MAX_VALUE): Uint8Array {
  return hostile({
    nodes: [
      gateTree('x', 'g', 1e-30, 2e-30),
      node('ReduceMax', ['g'], ['gmax'], [int('keepdims', 0)]),
      node('Cast', ['gmax'], ['gd'], [int('to', DataType.DOUBLE)]),
      node('Mul', ['w', 'gd'], ['wide']),
      node('Cast', ['wide'], ['text'], [int('to', DataType.STRING)]),
      node('Identity', ['x'], ['y']),
    ],
    initializers: [
      onnx.TensorProto.create({
        name: 'w',
        dataType: DataType.DOUBLE,
        dims: [count],
        doubleData: Array.from({ length: count }, () => value),
      }),
    ],
    inputs: [valueInfo('x', DataType.FLOAT, ['N', 1])],
    outputs: [valueInfo('y', DataType.FLOAT, ['N', 1]), valueInfo('text', DataType.STRING, [count])],
    opsets: TREE_ENSEMBLE_OPSETS,
  });
}

/**
 * float32 [N, ...free] → `y` (the input plus zero) and, with `wideOutput`, `wide` float32
 * [width]: every run, of one row or 64, also takes `layers` Erf of `width` values (an initializer
 * times the input's sum), no strings: ~0.3–1 ms a run whatever its rows (the bound: 2 an element
 * a layer, within 2^20 at 16 000 × 30). A row-free output makes merged runs unmergeable.
 */
export function makeRowFreeMathModel(options: {
  width: number;
  layers: number;
  salt?: number;
  freeDims?: number;
  wideOutput?: boolean;
}): Uint8Array {
  const { width, layers, salt = 0, freeDims = 1, wideOutput = false } = options;
  const shape = freeDims === 1 ? ['N', 1] : ['N', ...Array.from({ length: freeDims }, (_, i) => `d${i}`)];
  const nodes: Onnx.INodeProto[] = [
    node('ReduceSum', ['x'], ['s'], [int('keepdims', 0)]),
    node('Mul', ['w', 's'], ['e0']),
  ];
  for (let i = 0; i < layers; i++) nodes.push(node('Erf', [`e${i}`], [`e${i + 1}`]));
  nodes.push(
    node('ReduceSum', [`e${layers}`], ['total'], [int('keepdims', 0)]),
    node('Mul', ['total', 'zero'], ['nothing']),
    node('Add', ['x', 'nothing'], ['y']),
  );
  if (wideOutput) nodes.push(node('Identity', [`e${layers}`], ['wide']));
  return hostile({
    nodes,
    initializers: [
      onnx.TensorProto.create({
        name: 'w',
        dataType: DataType.FLOAT,
        dims: [width],
        floatData: Array.from({ length: width }, (_, i) => (1 + i / 7 + salt) / width),
      }),
      onnx.TensorProto.create({ name: 'zero', dataType: DataType.FLOAT, dims: [], floatData: [0] }),
    ],
    inputs: [valueInfo('x', DataType.FLOAT, shape)],
    outputs: [
      valueInfo('y', DataType.FLOAT, shape),
      ...(wideOutput ? [valueInfo('wide', DataType.FLOAT, [width])] : []),
    ],
  });
}

function hostile(parts: GraphParts): Uint8Array {
  return encodeModel(parts, { producerName: 'quoll-review', graphName: 'hostile' });
}
