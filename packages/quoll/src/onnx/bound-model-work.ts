import type { onnx as Onnx } from 'onnx-proto';
import { readModelGraph, SMALL_TENSOR_VALUES } from './read-model-graph.js';
import type { GraphAttribute, GraphNode, GraphTensor } from './read-model-graph.js';
import { longToNumber } from './long-to-number.js';
import { longestTreePaths } from './longest-tree-paths.js';

/** Upper bounds of a tensor's shape that hold whatever values a run is fed. */
export interface TensorBound {
  /** An upper bound of each dimension (the rank is known exactly). */
  readonly dims: readonly number[];
  /** An upper bound of its element count (at most the product of `dims`, sometimes less). */
  readonly elements: number;
}

/** What a run may be fed, for {@link boundModelWork}. */
export interface WorkLimits {
  /** An upper bound of each graph input's first dimension when the model leaves it free. */
  readonly rows: number;
  /** An upper bound of each graph input's element count, and of every free dimension after the first. */
  readonly elements: number;
  /**
   * Inputs fed by an earlier pipeline step, by name: the bound of what feeds them (their free
   * dimensions are then bounded by `rows` and that tensor's dimensions, their elements by its).
   */
  readonly given?: ReadonlyMap<string, TensorBound>;
}

/** The bound of a model's work per run, or why there is none. */
export type ModelWork =
  | {
      readonly bounded: true;
      /** An upper bound of the work of one run, in element operations (see {@link boundModelWork}). */
      readonly work: number;
      /** The bounds assumed of the graph's inputs (a feed outside them voids the bound). */
      readonly inputs: ReadonlyMap<string, TensorBound>;
      /** Bounds of the graph's outputs. */
      readonly outputs: ReadonlyMap<string, TensorBound>;
    }
  | { readonly bounded: false; readonly reason: string };

/**
 * What a node costs on top of the elements it touches, in element operations: onnxruntime's
 * dispatch of one kernel and its output's allocation take about a microsecond, so a graph of many
 * tiny nodes is not free.
 */
export const NODE_WORK = 1024;

/** Tensors of a higher rank are not modelled (onnxruntime's own kernels mostly stop at 8 or so). */
const MAX_RANK = 32;

/** Tree ids of a tree ensemble are modelled below this, node ids below {@link NODE_LIMIT}: a pair is one small integer. */
const TREE_LIMIT = 2 ** 14;
const NODE_LIMIT = 2 ** 16;

/** `TensorProto.DataType` of strings. */
const STRING = 8;

/**
 * What each input and output of a node costs on top of {@link NODE_WORK}: onnxruntime fetches and
 * checks each value (about 100 ns), whatever its size.
 */
export const PORT_WORK = 128;

/** Nodes with more inputs (or outputs) than this are not modelled: no real model has them, and a name costs 3 bytes. */
const MAX_NODE_INPUTS = 256;

/** Work per element of a cast to or from strings (formatting or parsing a number), against 1 for arithmetic. */
const STRING_ELEMENT_WORK = 64;

/** A tensor's bound inside the analysis, with its values when it is a small known integer tensor. */
interface Bound extends TensorBound {
  readonly ints?: readonly number[] | undefined;
  /**
   * It may hold strings, each at most {@link STRING_ELEMENT_WORK} characters (class labels; a
   * cast of numbers to strings is refused): a node reading it is charged that much per element.
   */
  readonly strings?: boolean | undefined;
}

interface NodeBound {
  outputs: Bound[];
  work: number;
}

type Rule = (inputs: readonly (Bound | null)[], node: GraphNode) => NodeBound;

/** The model has no bound (thrown inside the analysis, returned as `{ bounded: false }`). */
class Unbounded extends Error {}

function refuse(reason: string): never {
  throw new Unbounded(reason);
}

/**
 * A sound upper bound of the work of one run of a model, from its graph alone: for every feed
 * within `limits` (each graph input's free first dimension ≤ `rows`, its other free dimensions
 * and its element count ≤ `elements`), whatever the values, no run does more element operations
 * than `work`. Each tensor carries an upper bound of every dimension (its rank known) and of its
 * element count, propagated node by node from the inputs' and initializers' shapes and the
 * nodes' attributes; a node's work is what it touches (the elements it writes and reads; a
 * `MatMul`'s multiply-adds; a tree ensemble's rows × the depths of its trees) plus
 * {@link NODE_WORK}. A shape that would follow from tensor values (a `Reshape` to a computed
 * shape), an operator not modelled here (loops, branches, `ConstantOfShape`, `Expand`, `Tile`,
 * `Range`, `Pad`, `Resize`, `OneHot`, domains other than ONNX and ONNX-ML, model functions) or
 * nodes not in topological order leave the model unbounded. The walk reads the graph without
 * decoding payloads ({@link readModelGraph}) and takes time linear in the model's size (ranks
 * are capped at 32): 3–16 ms for the tutorial's forest, 45–55 ms for a 750 KB one, on a busy machine.
 * @example
 * const bound = boundModelWork(bytes, { rows: 64, elements: 16384 });
 * if (bound.bounded && bound.work <= 1 << 20) runHere();
 */
export function boundModelWork(model: Uint8Array, limits: WorkLimits): ModelWork {
  try {
    return walk(model, limits);
  } catch (error) {
    if (error instanceof Unbounded) return { bounded: false, reason: error.message };
    return { bounded: false, reason: `the model cannot be read (${(error as Error).message})` };
  }
}

function walk(model: Uint8Array, limits: WorkLimits): ModelWork {
  const graph = readModelGraph(model);
  if (graph.hasFunctions) refuse('the model defines functions');
  const tensors = new Map<string, Bound>();
  for (const [name, tensor] of graph.initializers)
    tensors.set(name, tensorBound(tensor, `initializer "${name}"`));
  const inputs = new Map<string, TensorBound>();
  const sparse = new Set(graph.sparseInitializers);
  for (const input of graph.inputs) {
    const name = input.name;
    if (tensors.has(name)) continue; // An initializer that is also an input: Quoll never feeds it.
    if (sparse.has(name)) refuse(`input "${name}" is a sparse initializer`);
    const bound = inputBound(input, limits);
    inputs.set(name, bound);
    tensors.set(name, bound);
  }
  let work = 0;
  for (const node of graph.nodes) {
    const op =
      node.domain === '' || node.domain === 'ai.onnx' ? node.opType : `${node.domain}:${node.opType}`;
    const rule = RULES.get(op) ?? refuse(`${op} is not modelled`);
    for (const [name, held] of node.attributes)
      if (held.opaque) refuse(`${op} has a subgraph or an attribute that is not read ("${name}")`);
    if (node.inputs.length > MAX_NODE_INPUTS || node.outputs.length > MAX_NODE_INPUTS)
      refuse(
        `${op} has ${Math.max(node.inputs.length, node.outputs.length)} inputs (more than ${MAX_NODE_INPUTS})`,
      );
    const read = node.inputs.map((name) =>
      name === '' ? null : (tensors.get(name) ?? refuse(`${op} reads "${name}" before any node makes it`)),
    );
    const bound = rule(read, node);
    const readsStrings = read.some((x) => x?.strings === true);
    work +=
      NODE_WORK +
      PORT_WORK * (node.inputs.length + node.outputs.length) +
      (readsStrings ? STRING_ELEMENT_WORK : 1) * bound.work;
    node.outputs.forEach((name, i) => {
      if (name === '') return;
      const output = bound.outputs[i] ?? refuse(`${op} has an output (#${i}) that is not modelled`);
      // What is made of strings may be strings (a Cast says for itself).
      tensors.set(name, readsStrings && op !== 'Cast' ? { ...output, strings: true } : output);
    });
  }
  const outputs = new Map<string, TensorBound>();
  if (graph.outputs.length > MAX_NODE_INPUTS) refuse(`the graph has ${graph.outputs.length} outputs`);
  for (const name of graph.outputs) {
    // Each output listed is copied out on its own: a name listed many times is many copies.
    if (outputs.has(name)) refuse(`output "${name}" is listed twice`);
    const output = tensors.get(name) ?? refuse(`output "${name}" is made by no node`);
    outputs.set(name, output);
    work += PORT_WORK + output.elements;
  }
  if (!Number.isFinite(work)) refuse('the work has no finite bound');
  return { bounded: true, work, inputs, outputs };
}

/** A graph input's bound: its declared dims, the free ones bounded by the limits. */
function inputBound(input: Onnx.ValueInfoProto, limits: WorkLimits): Bound {
  const tensorType = input.type?.tensorType;
  const shape = tensorType?.shape;
  if (!tensorType || !shape) refuse(`input "${input.name}" has no declared shape`);
  // A string's length is the request's to choose: an element count does not bound its work.
  if (tensorType.elemType === STRING) refuse(`input "${input.name}" holds strings`);
  const given = limits.given?.get(input.name);
  const givenMax = given ? Math.max(1, ...given.dims) : 0;
  const dims = (shape.dim ?? []).map((dim, j) => {
    // A fixed size onnxruntime checks every feed against; a name, 0 or nothing leaves it free.
    const fixed = dim.dimParam ? 0 : longToNumber(dim.dimValue);
    if (fixed > 0) return fixed;
    if (given) return j === 0 ? Math.max(limits.rows, givenMax) : givenMax;
    return j === 0 ? limits.rows : limits.elements;
  });
  return bound(dims, given ? given.elements : limits.elements);
}

function tensorBound(tensor: GraphTensor, what: string): Bound {
  if (tensor.external) refuse(`${what} lives outside the model file`);
  // A string's length is not bounded by the element count (a megabyte in one element).
  if (tensor.dataType === STRING) refuse(`${what} holds strings`);
  return bound(tensor.dims, Infinity, tensor.ints ?? undefined);
}

function bound(dims: readonly number[], elements: number, ints?: readonly number[]): Bound {
  // Ranks are capped so that no node costs the walk more than its inputs times MAX_RANK.
  if (dims.length > MAX_RANK) refuse(`a tensor of rank ${dims.length} (more than ${MAX_RANK})`);
  for (const dim of dims) if (!(dim >= 0)) refuse(`a dimension bound is not a size (${dim})`);
  return { dims, elements: Math.min(product(dims), elements), ints };
}

function product(values: readonly number[]): number {
  let result = 1;
  for (const value of values) result *= value;
  return result;
}

function input(inputs: readonly (Bound | null)[], i: number, node: GraphNode): Bound {
  return inputs[i] ?? refuse(`${node.opType} lacks its input #${i}`);
}

function attribute(node: GraphNode, name: string): GraphAttribute | undefined {
  return node.attributes.get(name);
}

function intAttribute(node: GraphNode, name: string, fallback: number): number {
  return attribute(node, name)?.int ?? fallback;
}

/** An axis attribute or value normalised against `rank` (negative counts from the end). */
function axisIn(axis: number, rank: number, node: GraphNode): number {
  const normal = axis < 0 ? axis + rank : axis;
  if (!(normal >= 0 && normal < rank)) refuse(`${node.opType} has axis ${axis} outside rank ${rank}`);
  return normal;
}

/** `axes` from the attribute, else from a known input #`from`; null when neither (absent or computed). */
function axesOf(inputs: readonly (Bound | null)[], node: GraphNode, from: number): readonly number[] | null {
  const fromAttribute = attribute(node, 'axes');
  if (fromAttribute) return fromAttribute.ints;
  const fromInput = inputs[from];
  if (!fromInput) return null;
  return fromInput.ints ?? refuse(`${node.opType}'s axes are computed from values`);
}

/** Numpy broadcasting of dim bounds: right-aligned, each the largest (a 0 or a 1 never exceeds it). */
function broadcastDims(shapes: readonly (readonly number[])[]): number[] {
  const rank = Math.max(0, ...shapes.map((dims) => dims.length));
  const out: number[] = [];
  for (let j = 0; j < rank; j++) {
    let largest = 1;
    for (const dims of shapes) {
      const at = dims.length - rank + j;
      if (at >= 0) largest = Math.max(largest, dims[at]!);
    }
    out.push(largest);
  }
  return out;
}

// ---------------------------------------------------------------- rules

/** Same shape out as in (input #0), touching each element `factor` times. */
function unary(factor = 1, keepValues = false): Rule {
  return (inputs, node) => {
    const x = input(inputs, 0, node);
    return {
      outputs: [bound(x.dims, x.elements, keepValues ? x.ints : undefined)],
      work: factor * x.elements,
    };
  };
}

/**
 * Broadcasting element-wise operators. The output's elements are at most the product of the
 * inputs' (where no dimension is 0 each output dimension is one input's or their common size;
 * where one is 0 the output is empty), and at most the product of the broadcast dim bounds.
 */
/**
 * Sum, Max, Min: onnxruntime broadcasts pairwise, reading and writing the whole output once per
 * input after the first.
 */
const variadic: Rule = (inputs, node) => {
  const { outputs, work } = broadcast(inputs, node);
  const present = inputs.filter((x) => x !== null).length;
  return { outputs, work: work + Math.max(0, present - 1) * outputs[0]!.elements };
};

const broadcast: Rule = (inputs, node) => {
  const present = inputs.filter((x): x is Bound => x !== null);
  if (present.length === 0) refuse(`${node.opType} has no input`);
  const dims = broadcastDims(present.map((x) => x.dims));
  const out = bound(dims, product(present.map((x) => x.elements)));
  return { outputs: [out], work: out.elements + present.reduce((sum, x) => sum + x.elements, 0) };
};

const cast: Rule = (inputs, node) => {
  const x = input(inputs, 0, node);
  const to = intAttribute(node, 'to', 0);
  // onnxruntime formats each number at full precision: a huge double is hundreds of digits and
  // took microseconds each (review F5), 0 one digit; no cost per element covers it, and a gate
  // computed from the request can choose which the run formats.
  if (to === STRING && !x.strings)
    refuse('Cast to strings (formatting a number takes time that depends on its value)');
  const keepsIntegers = to === 6 || to === 7;
  const out = bound(x.dims, x.elements, keepsIntegers ? x.ints : undefined);
  return {
    outputs: [to === STRING ? { ...out, strings: true } : out],
    work: (to === STRING ? STRING_ELEMENT_WORK : 1) * x.elements,
  };
};

const matMul: Rule = (inputs, node) => {
  const a = input(inputs, 0, node);
  const b = input(inputs, 1, node);
  if (a.dims.length === 0 || b.dims.length === 0) refuse('MatMul of a scalar');
  const left = a.dims.length === 1 ? [1, a.dims[0]!] : a.dims;
  const right = b.dims.length === 1 ? [b.dims[0]!, 1] : b.dims;
  const m = left[left.length - 2]!;
  const k = Math.min(left[left.length - 1]!, right[right.length - 2]!);
  const n = right[right.length - 1]!;
  const batch = broadcastDims([left.slice(0, -2), right.slice(0, -2)]);
  const dims = [...batch, ...(a.dims.length === 1 ? [] : [m]), ...(b.dims.length === 1 ? [] : [n])];
  const out = bound(dims, Infinity);
  return { outputs: [out], work: product(batch) * m * n * k + out.elements };
};

const gemm: Rule = (inputs, node) => {
  const a = input(inputs, 0, node);
  const b = input(inputs, 1, node);
  if (a.dims.length !== 2 || b.dims.length !== 2) refuse('Gemm of inputs not of rank 2');
  const transA = intAttribute(node, 'transA', 0) !== 0;
  const transB = intAttribute(node, 'transB', 0) !== 0;
  const m = transA ? a.dims[1]! : a.dims[0]!;
  const k = Math.min(transA ? a.dims[0]! : a.dims[1]!, transB ? b.dims[1]! : b.dims[0]!);
  const n = transB ? b.dims[0]! : b.dims[1]!;
  const out = bound([m, n], Infinity);
  return { outputs: [out], work: m * n * k + 2 * out.elements + (inputs[2]?.elements ?? 0) };
};

const flatten: Rule = (inputs, node) => {
  const x = input(inputs, 0, node);
  const rank = x.dims.length;
  const raw = intAttribute(node, 'axis', 1);
  const axis = raw < 0 ? raw + rank : raw;
  if (!(axis >= 0 && axis <= rank)) refuse(`Flatten has axis ${raw} outside rank ${rank}`);
  const out = bound([product(x.dims.slice(0, axis)), product(x.dims.slice(axis))], x.elements);
  return { outputs: [out], work: x.elements };
};

const reshape: Rule = (inputs, node) => {
  const x = input(inputs, 0, node);
  const shape = input(inputs, 1, node).ints ?? refuse("Reshape's shape is computed from values");
  const allowZero = intAttribute(node, 'allowzero', 0) !== 0;
  const dims = shape.map((value, j) => {
    if (value > 0) return value;
    if (value === 0)
      return allowZero ? 0 : (x.dims[j] ?? refuse('Reshape copies a dimension the input lacks'));
    // -1: what the others leave of the element count (onnxruntime refuses it beside a 0).
    if (value === -1) return x.elements;
    return refuse(`Reshape to a dimension of ${value}`);
  });
  return { outputs: [bound(dims, x.elements, x.ints)], work: x.elements };
};

const squeeze: Rule = (inputs, node) => {
  const x = input(inputs, 0, node);
  const axes = axesOf(inputs, node, 1) ?? refuse('Squeeze without axes (the rank would follow from values)');
  const drop = new Set(axes.map((axis) => axisIn(axis, x.dims.length, node)));
  const dims = x.dims.filter((_, j) => !drop.has(j));
  return { outputs: [bound(dims, x.elements, x.ints)], work: x.elements };
};

const unsqueeze: Rule = (inputs, node) => {
  const x = input(inputs, 0, node);
  const axes = axesOf(inputs, node, 1) ?? refuse('Unsqueeze without axes');
  const rank = x.dims.length + axes.length;
  const added = new Set(axes.map((axis) => axisIn(axis, rank, node)));
  if (added.size !== axes.length) refuse('Unsqueeze repeats an axis');
  const dims: number[] = [];
  let from = 0;
  for (let j = 0; j < rank; j++) dims.push(added.has(j) ? 1 : x.dims[from++]!);
  return { outputs: [bound(dims, x.elements, x.ints)], work: x.elements };
};

const transpose: Rule = (inputs, node) => {
  const x = input(inputs, 0, node);
  const rank = x.dims.length;
  const perm = attribute(node, 'perm')?.ints ?? x.dims.map((_, j) => rank - 1 - j);
  if (perm.length !== rank || new Set(perm).size !== rank || perm.some((p) => !(p >= 0 && p < rank)))
    refuse('Transpose with a perm that is not a permutation of the rank');
  return {
    outputs: [
      bound(
        perm.map((p) => x.dims[p]!),
        x.elements,
      ),
    ],
    work: x.elements,
  };
};

const concat: Rule = (inputs, node) => {
  const present = inputs.filter((x): x is Bound => x !== null);
  if (present.length === 0) refuse('Concat of nothing');
  const rank = present[0]!.dims.length;
  if (present.some((x) => x.dims.length !== rank)) refuse('Concat of inputs of different ranks');
  const axis = axisIn(intAttribute(node, 'axis', 0), rank, node);
  const dims = present[0]!.dims.map((_, j) =>
    j === axis
      ? present.reduce((sum, x) => sum + x.dims[j]!, 0)
      : Math.max(...present.map((x) => x.dims[j]!)),
  );
  // Values only of rank-1 pieces (on any other axis onnxruntime interleaves them), and only a
  // few: values doubled node after node would otherwise fill the heap at deploy.
  const known = present.every((x) => x.ints !== undefined && x.dims.length === 1);
  const count = known ? present.reduce((sum, x) => sum + x.ints!.length, 0) : Infinity;
  const ints = count <= SMALL_TENSOR_VALUES ? present.flatMap((x) => x.ints!) : undefined;
  const out = bound(
    dims,
    present.reduce((sum, x) => sum + x.elements, 0),
    ints,
  );
  return { outputs: [out], work: out.elements };
};

/** Slice: each dimension at most the input's, whatever its starts, ends and steps. */
const slice: Rule = (inputs, node) => {
  const x = input(inputs, 0, node);
  return { outputs: [bound(x.dims, x.elements)], work: x.elements };
};

/**
 * Gather: data's dims with the axis replaced by the indices' dims. Elements at most data's
 * times the indices' (when the axis is empty every index is out of range).
 */
const gather: Rule = (inputs, node) => {
  const data = input(inputs, 0, node);
  const indices = input(inputs, 1, node);
  const axis = axisIn(intAttribute(node, 'axis', 0), data.dims.length, node);
  const dims = [...data.dims.slice(0, axis), ...indices.dims, ...data.dims.slice(axis + 1)];
  const out = bound(dims, data.elements * indices.elements);
  return { outputs: [out], work: out.elements + indices.elements };
};

const shape: Rule = (inputs, node) => {
  const x = input(inputs, 0, node);
  return { outputs: [bound([x.dims.length], Infinity)], work: x.dims.length };
};

const argReduce: Rule = (inputs, node) => {
  const x = input(inputs, 0, node);
  const axis = axisIn(intAttribute(node, 'axis', 0), x.dims.length, node);
  const keep = intAttribute(node, 'keepdims', 1) !== 0;
  const dims = keep ? x.dims.map((d, j) => (j === axis ? 1 : d)) : x.dims.filter((_, j) => j !== axis);
  return { outputs: [bound(dims, Infinity)], work: x.elements };
};

/** ReduceSum/Mean/Max/Min: a reduced dimension becomes 1 (even an empty one), or goes. */
const reduce: Rule = (inputs, node) => {
  const x = input(inputs, 0, node);
  const keep = intAttribute(node, 'keepdims', 1) !== 0;
  const attributeAxes = attribute(node, 'axes');
  const axisInput = inputs[1];
  let dims: number[];
  if (!attributeAxes && axisInput && axisInput.ints === undefined) {
    // Axes computed from values: the rank stays known only when it is kept.
    if (!keep) refuse(`${node.opType} of computed axes without keepdims`);
    dims = x.dims.map((d) => Math.max(d, 1));
  } else {
    const axes = axesOf(inputs, node, 1) ?? [];
    if (axes.length === 0 && intAttribute(node, 'noop_with_empty_axes', 0) !== 0) {
      dims = [...x.dims];
    } else {
      const reduced = new Set(
        axes.length === 0 ? x.dims.map((_, j) => j) : axes.map((axis) => axisIn(axis, x.dims.length, node)),
      );
      dims = keep ? x.dims.map((d, j) => (reduced.has(j) ? 1 : d)) : x.dims.filter((_, j) => !reduced.has(j));
    }
  }
  const out = bound(dims, Infinity);
  return { outputs: [out], work: x.elements + out.elements };
};

const constant: Rule = (_inputs, node) => {
  const value = node.attributes.get('value');
  let out: Bound;
  if (value?.tensor) out = tensorBound(value.tensor, 'a Constant');
  else if (node.attributes.has('value_string') || node.attributes.has('value_strings'))
    return refuse('a Constant of strings');
  else if (node.attributes.has('value_float')) out = bound([], 1);
  else if (node.attributes.has('value_int')) out = bound([], 1, [node.attributes.get('value_int')!.int ?? 0]);
  else if (node.attributes.has('value_floats'))
    out = bound([node.attributes.get('value_floats')!.floats], Infinity);
  else if (node.attributes.has('value_ints')) {
    const ints = node.attributes.get('value_ints')!.ints;
    out = bound([ints.length], Infinity, ints);
  } else return refuse('a Constant of a kind not modelled');
  return { outputs: [out], work: out.elements };
};

// ---------------------------------------------------------------- ONNX-ML

/** Rows and features of an ML operator's input: [F] is one row, [N, F] N rows. */
function rowsAndFeatures(x: Bound, node: GraphNode): { rows: number; features: number } {
  if (x.dims.length === 1) return { rows: 1, features: x.dims[0]! };
  if (x.dims.length === 2) return { rows: x.dims[0]!, features: x.dims[1]! };
  return refuse(`${node.opType} of an input of rank ${x.dims.length}`);
}

/**
 * The work of one row through a tree ensemble: for each tree, the longest path from any of its
 * nodes (the walk from a root visits no more), plus the most weights any of its leaves adds.
 * Trees that do not check out (lengths that differ, a child that does not exist, a cycle) are
 * not modelled: onnxruntime refuses most of them at load anyway.
 */
function treeRowWork(node: GraphNode, weights: 'target' | 'class'): number {
  const ints = (name: string): readonly number[] => attribute(node, name)?.ints ?? [];
  const treeIds = ints('nodes_treeids');
  const nodeIds = ints('nodes_nodeids');
  const trueIds = ints('nodes_truenodeids');
  const falseIds = ints('nodes_falsenodeids');
  const modes = attribute(node, 'nodes_modes')?.strings ?? [];
  const count = treeIds.length;
  if (count === 0 || [nodeIds, trueIds, falseIds, modes].some((list) => list.length !== count))
    refuse(`${node.opType} whose node attributes do not line up`);
  // (tree, node) as one small integer: trees past 2^14 or node ids past 2^16 are not modelled
  // (exporters number both from 0, and a model of a megabyte holds fewer nodes).
  const key = (tree: number, id: number): number => {
    if (!(tree >= 0 && tree < TREE_LIMIT && id >= 0 && id < NODE_LIMIT))
      refuse(`${node.opType} has a tree or node id past what is modelled`);
    return tree * NODE_LIMIT + id;
  };
  // onnxruntime starts a tree (a root each row walks from) wherever the tree id changes from one
  // node to the next: a tree whose nodes are listed apart would have many roots.
  const started = new Set<number>();
  for (let i = 0; i < count; i++) {
    if (i > 0 && treeIds[i] === treeIds[i - 1]) continue;
    if (started.has(treeIds[i]!))
      refuse(`${node.opType} lists the nodes of a tree apart (tree ${treeIds[i]})`);
    started.add(treeIds[i]!);
  }
  const index = new Map<number, number>();
  for (let i = 0; i < count; i++) {
    const at = key(treeIds[i]!, nodeIds[i]!);
    if (index.has(at)) refuse(`${node.opType} repeats node ${nodeIds[i]} of tree ${treeIds[i]}`);
    index.set(at, i);
  }
  // Each node's two children (-1 for a leaf's), looked up once.
  const childOf = (i: number, id: number): number =>
    index.get(key(treeIds[i]!, id)) ?? refuse(`${node.opType} branches to a missing node`);
  const onTrue = new Int32Array(count);
  const onFalse = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const leaf = modes[i] === 'LEAF';
    onTrue[i] = leaf ? -1 : childOf(i, trueIds[i]!);
    onFalse[i] = leaf ? -1 : childOf(i, falseIds[i]!);
  }
  // Longest path (in nodes) from each node.
  const depth = longestTreePaths(onTrue, onFalse) ?? refuse(`${node.opType} has a cycle`);
  const deepest = new Map<number, number>();
  for (let i = 0; i < count; i++)
    deepest.set(treeIds[i]!, Math.max(deepest.get(treeIds[i]!) ?? 0, depth[i]!));
  const leafTrees = ints(`${weights}_treeids`);
  const leafNodes = ints(`${weights}_nodeids`);
  if (leafTrees.length !== leafNodes.length) refuse(`${node.opType} whose weights do not line up`);
  const perLeaf = new Map<number, number>();
  const mostPerLeaf = new Map<number, number>();
  for (let i = 0; i < leafTrees.length; i++) {
    const at = key(leafTrees[i]!, leafNodes[i]!);
    const n = (perLeaf.get(at) ?? 0) + 1;
    perLeaf.set(at, n);
    mostPerLeaf.set(leafTrees[i]!, Math.max(mostPerLeaf.get(leafTrees[i]!) ?? 0, n));
  }
  let work = 0;
  for (const d of deepest.values()) work += d;
  for (const n of mostPerLeaf.values()) work += n;
  return work;
}

/**
 * The longest string class label (copied into each row's label output), in characters; a
 * label longer than {@link STRING_ELEMENT_WORK} is not modelled (see `Bound.strings`).
 */
function longestLabel(node: GraphNode): number {
  const longest = (attribute(node, 'classlabels_strings')?.strings ?? []).reduce(
    (most, label) => Math.max(most, Buffer.byteLength(label)),
    0,
  );
  if (longest > STRING_ELEMENT_WORK) refuse(`${node.opType} has a class label of ${longest} bytes`);
  return longest;
}

/** The label output of a classifier: strings when its labels are. */
function labels(rows: number, node: GraphNode): Bound {
  const out = bound([rows], Infinity);
  return attribute(node, 'classlabels_strings') ? { ...out, strings: true } : out;
}

const treeRegressor: Rule = (inputs, node) => {
  const x = input(inputs, 0, node);
  const { rows } = rowsAndFeatures(x, node);
  const targets = attribute(node, 'n_targets')?.int ?? refuse('TreeEnsembleRegressor without n_targets');
  if (!(targets >= 1)) refuse('TreeEnsembleRegressor with n_targets below 1');
  return {
    outputs: [bound([rows, targets], Infinity)],
    work: rows * (treeRowWork(node, 'target') + targets) + x.elements,
  };
};

const treeClassifier: Rule = (inputs, node) => {
  const x = input(inputs, 0, node);
  const { rows } = rowsAndFeatures(x, node);
  const classes = Math.max(
    attribute(node, 'classlabels_int64s')?.ints.length ?? 0,
    attribute(node, 'classlabels_strings')?.strings.length ?? 0,
  );
  if (classes === 0) refuse('TreeEnsembleClassifier without class labels');
  const columns = Math.max(classes, 2);
  return {
    outputs: [labels(rows, node), bound([rows, columns], Infinity)],
    work: rows * (treeRowWork(node, 'class') + 2 * columns + longestLabel(node)) + x.elements,
  };
};

const linearRegressor: Rule = (inputs, node) => {
  const x = input(inputs, 0, node);
  const { rows, features } = rowsAndFeatures(x, node);
  const targets = intAttribute(node, 'targets', 1);
  if (!(targets >= 1)) refuse('LinearRegressor with targets below 1');
  return {
    outputs: [bound([rows, targets], Infinity)],
    work: rows * (features * targets + targets) + x.elements,
  };
};

const linearClassifier: Rule = (inputs, node) => {
  const x = input(inputs, 0, node);
  const { rows, features } = rowsAndFeatures(x, node);
  const columns = Math.max(
    2,
    attribute(node, 'classlabels_ints')?.ints.length ?? 0,
    attribute(node, 'classlabels_strings')?.strings.length ?? 0,
    attribute(node, 'intercepts')?.floats ?? 0,
  );
  return {
    outputs: [labels(rows, node), bound([rows, columns], Infinity)],
    work: rows * (features * columns + 2 * columns + longestLabel(node)) + x.elements,
  };
};

/** ArrayFeatureExtractor: the indices' values of the last axis; [F] input gives [1, indices]. */
const arrayFeatureExtractor: Rule = (inputs, node) => {
  const x = input(inputs, 0, node);
  const indices = input(inputs, 1, node);
  if (x.dims.length === 0) refuse('ArrayFeatureExtractor of a scalar');
  const lead = x.dims.length === 1 ? [1] : x.dims.slice(0, -1);
  const out = bound([...lead, indices.elements], Infinity);
  return { outputs: [out], work: out.elements + indices.elements };
};

const featureVectorizer: Rule = (inputs, node) => {
  const present = inputs.filter((x): x is Bound => x !== null);
  if (present.length === 0) refuse('FeatureVectorizer of nothing');
  const rows = Math.max(...present.map((x) => (x.dims.length <= 1 ? 1 : x.dims[0]!)));
  const width = (attribute(node, 'inputdimensions')?.ints ?? []).reduce((sum, d) => sum + Math.max(d, 0), 0);
  const out = bound([rows, width], Infinity);
  return { outputs: [out], work: out.elements + present.reduce((sum, x) => sum + x.elements, 0) };
};

/** Per operator (`op_type`, or `ai.onnx.ml:op_type`), how its outputs and work follow from its inputs. */
const RULES: ReadonlyMap<string, Rule> = new Map<string, Rule>([
  ['Identity', unary(1, true)],
  ['Cast', cast],
  ...['Neg', 'Abs', 'Floor', 'Ceil', 'Round', 'Sign', 'Relu', 'LeakyRelu', 'Not', 'Clip'].map(
    (op): [string, Rule] => [op, unary()],
  ),
  ...['Exp', 'Log', 'Sqrt', 'Reciprocal', 'Erf', 'Sigmoid', 'HardSigmoid', 'Tanh', 'Softplus'].map(
    (op): [string, Rule] => [op, unary(2)],
  ),
  ['Softmax', unary(4)],
  ['LogSoftmax', unary(4)],
  ['BatchNormalization', unary(2)],
  ...[
    'Add',
    'Sub',
    'Mul',
    'Div',
    'Where',
    'Equal',
    'Less',
    'Greater',
    'LessOrEqual',
    'GreaterOrEqual',
    'And',
    'Or',
  ].map((op): [string, Rule] => [op, broadcast]),
  ...['Sum', 'Max', 'Min'].map((op): [string, Rule] => [op, variadic]),
  ['MatMul', matMul],
  ['Gemm', gemm],
  ['Flatten', flatten],
  ['Reshape', reshape],
  ['Squeeze', squeeze],
  ['Unsqueeze', unsqueeze],
  ['Transpose', transpose],
  ['Concat', concat],
  ['Slice', slice],
  ['Gather', gather],
  ['Shape', shape],
  ['ArgMax', argReduce],
  ['ArgMin', argReduce],
  ...['ReduceSum', 'ReduceMean', 'ReduceMax', 'ReduceMin'].map((op): [string, Rule] => [op, reduce]),
  ['Constant', constant],
  ['ai.onnx.ml:TreeEnsembleRegressor', treeRegressor],
  ['ai.onnx.ml:TreeEnsembleClassifier', treeClassifier],
  ['ai.onnx.ml:LinearRegressor', linearRegressor],
  ['ai.onnx.ml:LinearClassifier', linearClassifier],
  ...['Scaler', 'Binarizer', 'Imputer'].map((op): [string, Rule] => [`ai.onnx.ml:${op}`, unary()]),
  ['ai.onnx.ml:Normalizer', unary(3)],
  ['ai.onnx.ml:ArrayFeatureExtractor', arrayFeatureExtractor],
  ['ai.onnx.ml:FeatureVectorizer', featureVectorizer],
]);
