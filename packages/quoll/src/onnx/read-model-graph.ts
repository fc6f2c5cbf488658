import onnxProto from 'onnx-proto';
import type { onnx as Onnx } from 'onnx-proto';
import { OnnxWireError, readNameField, WIRE, WireReader } from './wire-reader.js';

const { onnx } = onnxProto;

/** Integer tensors of at most this many elements have their values read (shapes, axes); larger ones only their dims. */
export const SMALL_TENSOR_VALUES = 64;

/** A tensor of the graph (an initializer, or a `Constant`'s value) as far as it is read. */
export interface GraphTensor {
  /** `TensorProto.DataType`; 0 when absent. */
  dataType: number;
  dims: number[];
  /**
   * The values of an INT64 or INT32 tensor of at most {@link SMALL_TENSOR_VALUES} elements held
   * in the file (`int64_data`, `int32_data` or `raw_data`); null for any other tensor.
   */
  ints: number[] | null;
  /** Its data lives outside the model file (`data_location: EXTERNAL`). */
  external: boolean;
}

/** One attribute of a node, with the parts a bound of the node's work reads. */
export interface GraphAttribute {
  /** `i`, or null when absent. */
  int: number | null;
  /** `s` as text, or null when absent. */
  string: string | null;
  /** `ints`, every value. */
  ints: number[];
  /** How many `floats` it holds (their values are not read). */
  floats: number;
  /** `strings` as text. */
  strings: string[];
  /** `t`, or null. */
  tensor: GraphTensor | null;
  /**
   * It holds what is not read: a graph (`g`, `graphs`: the bodies of `If`, `Loop`, `Scan`),
   * tensor lists, sparse tensors, type protos, or a reference to a function's attribute.
   */
  opaque: boolean;
}

/** One node of the main graph. */
export interface GraphNode {
  opType: string;
  /** `''` for the default ONNX domain. */
  domain: string;
  /** Input names in order; `''` for an optional input left out. */
  inputs: string[];
  outputs: string[];
  attributes: Map<string, GraphAttribute>;
}

/** The main graph of a model, read for the bound of its work (`boundModelWork`). */
export interface ModelGraph {
  /** Nodes in file order. */
  nodes: GraphNode[];
  /** Dense initializers by name. */
  initializers: Map<string, GraphTensor>;
  /** Names of sparse initializers (whose values are not read). */
  sparseInitializers: string[];
  inputs: Onnx.ValueInfoProto[];
  outputs: string[];
  /** The model defines functions of its own (`ModelProto.functions`). */
  hasFunctions: boolean;
}

const DATA_TYPE_INT32 = 6;
const DATA_TYPE_INT64 = 7;

/**
 * Reads a model's main graph: its nodes with their attributes, its initializers' dims (and the
 * values of small integer ones), its inputs and outputs. As `readModelInterface`, it walks the
 * protobuf fields itself: float payloads are counted, not decoded, and no tensor larger than
 * {@link SMALL_TENSOR_VALUES} elements has its values read, so a model of a megabyte reads in
 * about a millisecond. Subgraphs are not entered (their attributes are marked `opaque`).
 * @throws OnnxWireError when the bytes are not well-formed protobuf of that shape
 */
export function readModelGraph(bytes: Uint8Array): ModelGraph {
  const graph: ModelGraph = {
    nodes: [],
    initializers: new Map(),
    sparseInitializers: [],
    inputs: [],
    outputs: [],
    hasFunctions: false,
  };
  const model = new WireReader(bytes, 0, bytes.byteLength);
  let sawGraph = false;
  while (!model.done) {
    const { field, wire } = model.tag();
    if (field === 25) graph.hasFunctions = true;
    if (field !== 7) {
      model.skip(wire);
      continue;
    }
    // A singular message field that occurs twice is merged by onnxruntime's parser (C++
    // protobuf: both graphs' nodes run) but replaced by protobufjs: refuse rather than guess.
    if (sawGraph) throw new OnnxWireError('the model has more than one graph field');
    sawGraph = true;
    const span = model.delimited(field, wire);
    Object.assign(graph, readGraph(bytes, span.start, span.end), { hasFunctions: graph.hasFunctions });
  }
  return graph;
}

function readGraph(bytes: Uint8Array, from: number, to: number): Omit<ModelGraph, 'hasFunctions'> {
  const graph: Omit<ModelGraph, 'hasFunctions'> = {
    nodes: [],
    initializers: new Map(),
    sparseInitializers: [],
    inputs: [],
    outputs: [],
  };
  const reader = new WireReader(bytes, from, to);
  while (!reader.done) {
    const { field, wire } = reader.tag();
    switch (field) {
      case 1: {
        const { start, end } = reader.delimited(field, wire);
        graph.nodes.push(readNode(bytes, start, end));
        break;
      }
      case 5: {
        const { start, end } = reader.delimited(field, wire);
        const name = readNameField(bytes, start, end, 8);
        graph.initializers.set(name, readTensor(bytes, start, end));
        break;
      }
      case 15: {
        const { start, end } = reader.delimited(field, wire);
        const values = new WireReader(bytes, start, end);
        while (!values.done) {
          const tag = values.tag();
          if (tag.field !== 1) {
            values.skip(tag.wire);
            continue;
          }
          const tensor = values.delimited(tag.field, tag.wire);
          graph.sparseInitializers.push(readNameField(bytes, tensor.start, tensor.end, 8));
        }
        break;
      }
      case 11: {
        const { start, end } = reader.delimited(field, wire);
        checkSingular(bytes, start, end, VALUE_INFO);
        try {
          graph.inputs.push(onnx.ValueInfoProto.decode(bytes.subarray(start, end)));
        } catch (error) {
          throw new OnnxWireError((error as Error).message);
        }
        break;
      }
      case 12: {
        const { start, end } = reader.delimited(field, wire);
        graph.outputs.push(readNameField(bytes, start, end, 1));
        break;
      }
      default:
        reader.skip(wire);
    }
  }
  return graph;
}

/**
 * A node (NodeProto: input 1, output 2, op_type 4, attribute 5, domain 7) in `[from, to)` of
 * `bytes`; with `only`, the attributes of other names are skipped, not decoded.
 */
export function readNode(bytes: Uint8Array, from: number, to: number, only?: ReadonlySet<string>): GraphNode {
  const node: GraphNode = { opType: '', domain: '', inputs: [], outputs: [], attributes: new Map() };
  const reader = new WireReader(bytes, from, to);
  while (!reader.done) {
    const { field, wire } = reader.tag();
    switch (field) {
      case 1:
        node.inputs.push(reader.string(field, wire));
        break;
      case 2:
        node.outputs.push(reader.string(field, wire));
        break;
      case 4:
        node.opType = reader.string(field, wire);
        break;
      case 7:
        node.domain = reader.string(field, wire);
        break;
      case 5: {
        const { start, end } = reader.delimited(field, wire);
        if (only && !only.has(attributeName(bytes, start, end))) break;
        const [name, attribute] = readAttribute(bytes, start, end);
        node.attributes.set(name, attribute);
        break;
      }
      default:
        reader.skip(wire);
    }
  }
  return node;
}

/** The name of the attribute in `[from, to)`: its first field, as every ONNX writer puts it, else found. */
function attributeName(bytes: Uint8Array, from: number, to: number): string {
  const reader = new WireReader(bytes, from, to);
  if (reader.done) return '';
  const { field, wire } = reader.tag();
  return field === 1 && wire === WIRE.delimited
    ? reader.string(field, wire)
    : readNameField(bytes, from, to, 1);
}

/** AttributeProto: name 1, f 2, i 3, s 4, t 5, g 6, floats 7, ints 8, strings 9, the rest opaque. */
function readAttribute(bytes: Uint8Array, from: number, to: number): [string, GraphAttribute] {
  let name = '';
  const attribute: GraphAttribute = {
    int: null,
    string: null,
    ints: [],
    floats: 0,
    strings: [],
    tensor: null,
    opaque: false,
  };
  const reader = new WireReader(bytes, from, to);
  while (!reader.done) {
    const { field, wire } = reader.tag();
    switch (field) {
      case 1:
        name = reader.string(field, wire);
        break;
      case 3:
        attribute.int = reader.int64Fast();
        break;
      case 4:
        attribute.string = reader.string(field, wire);
        break;
      case 5: {
        const { start, end } = reader.delimited(field, wire);
        // Repeated, onnxruntime would merge the two tensors: not read.
        if (attribute.tensor !== null) attribute.opaque = true;
        attribute.tensor = readTensor(bytes, start, end);
        break;
      }
      case 7:
        attribute.floats +=
          wire === WIRE.fixed32
            ? reader.fixedRun(7 * 8 + WIRE.fixed32, 4)
            : reader.countFixed(field, wire, 4);
        break;
      case 8:
        if (wire === WIRE.varint) reader.int64Run(8 * 8, attribute.ints);
        else reader.int64s(field, wire, attribute.ints);
        break;
      case 9:
        attribute.strings.push(reader.string(field, wire));
        break;
      case 2:
      case 13:
      case 20:
        // f, doc_string, type: nothing a bound needs.
        reader.skip(wire);
        break;
      default:
        // g, tensors, graphs, tp, type_protos, ref_attr_name, sparse tensors and fields unknown.
        attribute.opaque = true;
        reader.skip(wire);
    }
  }
  return [name, attribute];
}

/** TensorProto: dims 1, data_type 2, int32_data 5, int64_data 7, raw_data 9, data_location 14. */
function readTensor(bytes: Uint8Array, from: number, to: number): GraphTensor {
  const tensor: GraphTensor = { dataType: 0, dims: [], ints: null, external: false };
  // At most one more value than a small tensor holds is read, so a large payload costs a skip.
  const int32s: number[] = [];
  const int64s: number[] = [];
  let raw: { start: number; end: number } | null = null;
  const reader = new WireReader(bytes, from, to);
  while (!reader.done) {
    const { field, wire } = reader.tag();
    switch (field) {
      case 1:
        reader.int64s(field, wire, tensor.dims);
        break;
      case 2:
        tensor.dataType = reader.int64Fast();
        break;
      case 5:
      case 7: {
        const into = field === 5 ? int32s : int64s;
        if (wire === WIRE.varint) {
          const value = reader.int64Fast();
          if (into.length <= SMALL_TENSOR_VALUES) into.push(value);
          break;
        }
        const { start, end } = reader.delimited(field, wire);
        const packed = new WireReader(bytes, start, end);
        while (!packed.done && into.length <= SMALL_TENSOR_VALUES) into.push(packed.int64Fast());
        if (!packed.done) into.push(Number.NaN);
        break;
      }
      case 9:
        raw = reader.delimited(field, wire);
        break;
      case 14:
        tensor.external = reader.int64Fast() === 1;
        break;
      case 3:
      case 13:
        // segment, external_data: a tensor whose data is not (all) here is not modelled.
        tensor.external = true;
        reader.skip(wire);
        break;
      default:
        reader.skip(wire);
    }
  }
  const count = tensor.dims.reduce((a, b) => a * b, 1);
  if (
    count > SMALL_TENSOR_VALUES ||
    (tensor.dataType !== DATA_TYPE_INT64 && tensor.dataType !== DATA_TYPE_INT32)
  )
    return tensor;
  let values = tensor.dataType === DATA_TYPE_INT64 ? int64s : int32s;
  if (raw !== null) {
    values = [];
    const width = tensor.dataType === DATA_TYPE_INT64 ? 8 : 4;
    const view = new DataView(bytes.buffer, bytes.byteOffset + raw.start, raw.end - raw.start);
    for (let at = 0; at + width <= view.byteLength; at += width)
      values.push(width === 8 ? Number(view.getBigInt64(at, true)) : view.getInt32(at, true));
  }
  tensor.ints = values.length === count && values.every(Number.isFinite) ? values : null;
  return tensor;
}

/**
 * Which fields of a message are singular messages (each with the fields of its own that are),
 * for {@link checkSingular}: `ValueInfoProto.type` → `TypeProto` (its value kinds, a oneof) →
 * `TypeProto.Tensor.shape` → `TensorShapeProto.dim` → `Dimension` (a oneof of two scalars).
 */
interface Singular {
  /** Field numbers of which at most one may occur, once (a oneof, or one singular field). */
  readonly once: readonly (readonly number[])[];
  /** Sub-messages to check, by field number. */
  readonly inside: ReadonlyMap<number, Singular>;
}

const DIMENSION: Singular = { once: [[1, 2]], inside: new Map() };
const SHAPE: Singular = { once: [], inside: new Map([[1, DIMENSION]]) };
const TENSOR_TYPE: Singular = { once: [[2]], inside: new Map([[2, SHAPE]]) };
const TYPE: Singular = { once: [[1, 4, 5, 8, 9]], inside: new Map([[1, TENSOR_TYPE]]) };
const VALUE_INFO: Singular = { once: [[2]], inside: new Map([[2, TYPE]]) };

/**
 * Throws when a singular message field (or a oneof) of the message in `[from, to)` occurs more
 * than once: C++ protobuf (onnxruntime) merges such repeats where protobufjs keeps the last, so
 * the two would read different shapes.
 */
function checkSingular(bytes: Uint8Array, from: number, to: number, shape: Singular): void {
  const seen = new Map<number, number>();
  const reader = new WireReader(bytes, from, to);
  while (!reader.done) {
    const { field, wire } = reader.tag();
    const group = shape.once.findIndex((fields) => fields.includes(field));
    if (group >= 0) {
      if (seen.has(group)) throw new OnnxWireError(`field ${field} of a graph input's type occurs twice`);
      seen.set(group, field);
    }
    const inner = shape.inside.get(field);
    if (inner && wire === WIRE.delimited) {
      const span = reader.delimited(field, wire);
      checkSingular(bytes, span.start, span.end, inner);
    } else reader.skip(wire);
  }
}
