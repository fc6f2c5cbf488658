import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { ApiError } from '../errors/index.js';
import { longestTreePaths } from './longest-tree-paths.js';
import { readNode } from './read-model-graph.js';
import type { GraphNode } from './read-model-graph.js';
import { OnnxWireError, readNameField, WIRE, WireReader } from './wire-reader.js';

/**
 * The deepest tree (in levels below its root: a stump is 1, as scikit-learn's `max_depth`
 * counts) a tree ensemble may hold for Quoll to let onnxruntime load it.
 *
 * onnxruntime builds each tree at session creation by a recursion of one native frame per
 * level (`TreeEnsembleCommon::AddNodes`), on the thread that creates the session, and a stack
 * overflow there is a SIGSEGV of the whole server, not an error. Measured with onnxruntime
 * 1.30 (review of 4 December, F2): a chain-shaped tree of 1000 to 4000 levels loads in a worker
 * thread in 29–90 ms, one of 6000 kills the process; on the main thread (8 MiB stack) 16 000
 * does. Real forests stay far below: scikit-learn trees grown without `max_depth` on large data
 * reach some tens of levels and rarely more than a few hundred (only a chain grown on sorted,
 * adversarial data gets deeper), XGBoost defaults to 6 levels and LightGBM grows by leaves (31
 * by default). 1024 keeps a margin of about four below the deepest tree seen to load in a worker
 * (4000) whatever native frames sit below the recursion, and refuses nothing real.
 */
export const MAX_TREE_DEPTH = 1024;

/** `op_type`s of `ai.onnx.ml` whose trees onnxruntime builds recursively. */
const TREE_OPS = new Set(['TreeEnsembleRegressor', 'TreeEnsembleClassifier', 'TreeEnsemble']);

/** The attributes of a tree ensemble that say where its branches lead (the rest are not decoded). */
const TREE_ATTRIBUTES: ReadonlySet<string> = new Set([
  'nodes_treeids',
  'nodes_nodeids',
  'nodes_truenodeids',
  'nodes_falsenodeids',
  'nodes_modes',
  'nodes_trueleafs',
  'nodes_falseleafs',
  'tree_roots',
]);

/** The deepest tree of one ensemble node: its tree id (or index in `tree_roots`) and its levels. */
interface DeepestTree {
  tree: number;
  depth: number;
}

/**
 * Refuses a model holding a tree deeper than {@link MAX_TREE_DEPTH}, before onnxruntime sees it
 * (see the constant for why). Every tree ensemble node is read: those of the main graph, of
 * the subgraphs of `If`, `Loop` and `Scan` at any nesting, and of the model's functions, all
 * walked with a list of graphs to visit rather than recursion. Only tree nodes are decoded;
 * other nodes and initializers are skipped by their length. A tree whose branches loop is
 * refused too (onnxruntime refuses it at load, but only after recursing along the loop).
 * Malformed protobuf is left to onnxruntime, which reports it. `model` is the file's bytes or
 * its path: a file is read a node at a time (its initializers skipped by seeking), so a model
 * of a gigabyte of weights costs a scan of its nodes and no copy of it in memory.
 * @throws ApiError `invalid_model`, naming the node, the tree, its depth and the limit
 * @example
 * checkTreeDepths(path); // before createSession(path, …)
 */
export function checkTreeDepths(model: string | Uint8Array): void {
  try {
    if (typeof model === 'string') walkFile(model);
    else walk(model);
  } catch (error) {
    if (error instanceof OnnxWireError) return; // onnxruntime's parser refuses it with its own words.
    throw error;
  }
}

/** A graph (GraphProto: node 1) or a function (FunctionProto: node 7) in `[start, end)`. */
interface Pending {
  start: number;
  end: number;
  nodeField: number;
}

function walk(bytes: Uint8Array): void {
  const pending: Pending[] = [];
  const model = new WireReader(bytes, 0, bytes.byteLength);
  while (!model.done) {
    const { field, wire } = model.tag();
    // ModelProto: graph 7, functions 25.
    if ((field === 7 || field === 25) && wire === WIRE.delimited)
      pending.push({ ...model.delimited(field, wire), nodeField: field === 7 ? 1 : 7 });
    else model.skip(wire);
  }
  checkGraphs(bytes, pending);
}

/** The tree nodes of the graphs in `pending` and of every subgraph met in them. */
function checkGraphs(bytes: Uint8Array, pending: Pending[]): void {
  while (pending.length > 0) {
    const graph = pending.pop()!;
    const reader = new WireReader(bytes, graph.start, graph.end);
    while (!reader.done) {
      const { field, wire } = reader.tag();
      if (field !== graph.nodeField || wire !== WIRE.delimited) {
        reader.skip(wire);
        continue;
      }
      const span = reader.delimited(field, wire);
      if (scanNode(bytes, span.start, span.end, pending)) checkNode(bytes, span.start, span.end);
    }
  }
}

/**
 * As {@link walk}, reading the file at `path` a piece at a time: the ModelProto's and its
 * graph's fields by their keys and lengths, each node (with the subgraphs it holds) and each
 * function whole, the rest (initializers above all) not at all.
 */
function walkFile(path: string): void {
  const file = new FileCursor(path);
  try {
    file.fields(0, file.size, (field, start, end) => {
      if (field === 25) {
        checkGraphs(file.read(start, end), [{ start: 0, end: end - start, nodeField: 7 }]);
        return;
      }
      if (field !== 7) return;
      file.fields(start, end, (inner, from, to) => {
        if (inner !== 1) return;
        const node = file.read(from, to);
        const pending: Pending[] = [];
        if (scanNode(node, 0, node.byteLength, pending)) checkNode(node, 0, node.byteLength);
        checkGraphs(node, pending);
      });
    });
  } finally {
    file.close();
  }
}

/** Positional reads of a file for {@link walkFile}, through a window of {@link WINDOW} bytes. */
class FileCursor {
  readonly size: number;
  readonly #fd: number;
  readonly #window = Buffer.alloc(WINDOW);
  /** File offsets the window holds: `[#from, #to)`. */
  #from = 0;
  #to = 0;

  constructor(path: string) {
    this.#fd = openSync(path, 'r');
    this.size = fstatSync(this.#fd).size;
  }

  close(): void {
    closeSync(this.#fd);
  }

  /** The bytes `[start, end)` of the file. */
  read(start: number, end: number): Uint8Array {
    const bytes = Buffer.allocUnsafe(end - start);
    let done = 0;
    while (done < bytes.byteLength) {
      const got = readSync(this.#fd, bytes, done, bytes.byteLength - done, start + done);
      if (got === 0) throw new OnnxWireError('the file ends inside a field');
      done += got;
    }
    return bytes;
  }

  /**
   * Calls `visit` with each length-delimited field of the message in `[from, to)` (its number
   * and where its value lies), skipping the others.
   */
  fields(from: number, to: number, visit: (field: number, start: number, end: number) => void): void {
    let at = from;
    while (at < to) {
      const key = this.#varint(at, to);
      at = key.next;
      const field = Math.floor(key.value / 8);
      switch (key.value % 8) {
        case WIRE.varint:
          at = this.#varint(at, to).next;
          break;
        case WIRE.fixed64:
          at += 8;
          break;
        case WIRE.fixed32:
          at += 4;
          break;
        case WIRE.delimited: {
          const length = this.#varint(at, to);
          const end = length.next + length.value;
          if (end > to) throw new OnnxWireError(`a field of ${length.value} bytes runs past its message`);
          visit(field, length.next, end);
          at = end;
          break;
        }
        default:
          throw new OnnxWireError(`invalid wire type ${key.value % 8} at offset ${at}`);
      }
      if (at > to) throw new OnnxWireError('a field runs past its message');
    }
  }

  #varint(at: number, to: number): { value: number; next: number } {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++, at++) {
      if (at >= to) throw new OnnxWireError('a varint is cut off');
      const byte = this.#byte(at);
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) return { value, next: at + 1 };
      scale *= 128;
    }
    throw new OnnxWireError('a varint is longer than 10 bytes');
  }

  #byte(at: number): number {
    if (at < this.#from || at >= this.#to) {
      const got = readSync(this.#fd, this.#window, 0, WINDOW, at);
      if (got === 0) throw new OnnxWireError('the file ends inside a field');
      this.#from = at;
      this.#to = at + got;
    }
    return this.#window[at - this.#from]!;
  }
}

/** Bytes {@link FileCursor} reads at a time for the keys and lengths of fields. */
const WINDOW = 64 * 1024;

/**
 * Adds the subgraphs of a node's attributes (AttributeProto: g 6, graphs 11) to `pending`;
 * whether the node is a tree ensemble.
 */
function scanNode(bytes: Uint8Array, from: number, to: number, pending: Pending[]): boolean {
  let opType = '';
  let domain = '';
  const reader = new WireReader(bytes, from, to);
  while (!reader.done) {
    const { field, wire } = reader.tag();
    if (field === 4 && wire === WIRE.delimited) opType = reader.string(field, wire);
    else if (field === 7 && wire === WIRE.delimited) domain = reader.string(field, wire);
    else if (field === 5 && wire === WIRE.delimited) {
      const attribute = reader.delimited(field, wire);
      const inner = new WireReader(bytes, attribute.start, attribute.end);
      while (!inner.done) {
        const tag = inner.tag();
        if ((tag.field === 6 || tag.field === 11) && tag.wire === WIRE.delimited)
          pending.push({ ...inner.delimited(tag.field, tag.wire), nodeField: 1 });
        else inner.skip(tag.wire);
      }
    } else reader.skip(wire);
  }
  return domain === 'ai.onnx.ml' && TREE_OPS.has(opType);
}

/** Refuses the tree ensemble node in `[from, to)` of `bytes` when a tree of it is too deep or loops. */
function checkNode(bytes: Uint8Array, from: number, to: number): void {
  const node = readNode(bytes, from, to, TREE_ATTRIBUTES);
  const name = nodeName(node, readNameField(bytes, from, to, 3));
  const deepest = node.opType === 'TreeEnsemble' ? deepestV5(node) : deepestV3(node);
  if (deepest === null)
    throw new ApiError(
      'invalid_model',
      `Not a valid ONNX model: ${name} has a tree whose branches lead back to a node above them (a cycle). Upload a model whose trees are trees.`,
    );
  if (deepest.depth > MAX_TREE_DEPTH)
    throw new ApiError(
      'invalid_model',
      `Not a valid ONNX model: tree ${deepest.tree} of ${name} is ${deepest.depth} levels deep, ` +
        `more than the ${MAX_TREE_DEPTH} Quoll loads (onnxruntime builds a tree by one native call per level, ` +
        `and a deeper one can overflow the stack). Upload a model whose trees are at most ${MAX_TREE_DEPTH} levels deep ` +
        `(e.g. train with max_depth=${MAX_TREE_DEPTH} or less).`,
      { treeDepth: deepest.depth, maxTreeDepth: MAX_TREE_DEPTH },
    );
}

/** How a message names a node: by its name (NodeProto.name) when it has one. */
function nodeName(node: GraphNode, name: string): string {
  return name === '' ? `a ${node.opType} node` : `${node.opType} node "${name}"`;
}

function ints(node: GraphNode, name: string): readonly number[] {
  return node.attributes.get(name)?.ints ?? [];
}

/**
 * TreeEnsembleRegressor/Classifier: nodes keyed by (tree id, node id), children by id within
 * the parent's tree, no children below a `LEAF`. Every node with ids is measured; where the
 * other lists fall short (onnxruntime refuses lists that do not line up), the node is read as a
 * branch without that child, erring on the deep side. A child that does not exist is none
 * (onnxruntime refuses it when it gets there).
 */
function deepestV3(node: GraphNode): DeepestTree | null {
  const treeIds = ints(node, 'nodes_treeids');
  const nodeIds = ints(node, 'nodes_nodeids');
  const trueIds = ints(node, 'nodes_truenodeids');
  const falseIds = ints(node, 'nodes_falsenodeids');
  const modes = node.attributes.get('nodes_modes')?.strings ?? [];
  const count = Math.min(treeIds.length, nodeIds.length);
  const index = new Map<number, Map<number, number>>();
  for (let i = 0; i < count; i++) {
    let tree = index.get(treeIds[i]!);
    if (!tree) index.set(treeIds[i]!, (tree = new Map<number, number>()));
    // A repeated id leads to its first node; every node's own path is measured all the same.
    if (!tree.has(nodeIds[i]!)) tree.set(nodeIds[i]!, i);
  }
  const onTrue = new Int32Array(count);
  const onFalse = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const leaf = modes[i] === 'LEAF';
    const tree = index.get(treeIds[i]!)!;
    const t = trueIds[i];
    const f = falseIds[i];
    onTrue[i] = leaf || t === undefined ? -1 : (tree.get(t) ?? -1);
    onFalse[i] = leaf || f === undefined ? -1 : (tree.get(f) ?? -1);
  }
  const paths = longestTreePaths(onTrue, onFalse);
  if (paths === null) return null;
  // A path of n nodes is n - 1 levels below its first.
  return deepestOf(paths, (i) => treeIds[i]!, -1);
}

/**
 * TreeEnsemble (`ai.onnx.ml` 5): nodes by position, a child by position unless its
 * `nodes_trueleafs`/`nodes_falseleafs` flag makes it a leaf (of a list of its own); the tree
 * of a node is the root it hangs from (`tree_roots`), found by the depth of every node.
 */
function deepestV5(node: GraphNode): DeepestTree | null {
  const trueIds = ints(node, 'nodes_truenodeids');
  const falseIds = ints(node, 'nodes_falsenodeids');
  const trueLeafs = ints(node, 'nodes_trueleafs');
  const falseLeafs = ints(node, 'nodes_falseleafs');
  // As long as the longer list: a child missing from the shorter one is none.
  const count = Math.max(trueIds.length, falseIds.length);
  const child = (id: number | undefined, leaf: number | undefined): number =>
    leaf === 1 || id === undefined || !(id >= 0 && id < count) ? -1 : id;
  const onTrue = new Int32Array(count);
  const onFalse = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    onTrue[i] = child(trueIds[i], trueLeafs[i]);
    onFalse[i] = child(falseIds[i], falseLeafs[i]);
  }
  const paths = longestTreePaths(onTrue, onFalse);
  if (paths === null) return null;
  // Branch nodes only: a path of n of them ends in a leaf n levels below its first.
  const roots = ints(node, 'tree_roots');
  const treeOf = (i: number): number => {
    const tree = roots.indexOf(i);
    return tree >= 0 ? tree : 0;
  };
  return deepestOf(paths, treeOf, 0);
}

/** The longest of `paths` (plus `offset` levels) and the tree it is in. */
function deepestOf(paths: Int32Array, treeOf: (i: number) => number, offset: number): DeepestTree {
  let at = 0;
  for (let i = 1; i < paths.length; i++) if (paths[i]! > paths[at]!) at = i;
  return { tree: paths.length === 0 ? 0 : treeOf(at), depth: Math.max(0, (paths[at] ?? 0) + offset) };
}
