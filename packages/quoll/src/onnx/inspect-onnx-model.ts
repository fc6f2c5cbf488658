import type { onnx as Onnx } from 'onnx-proto';
import type { TensorElementType, TensorInfoDto } from '@quoll/client/wire';
import { ApiError } from '../errors/index.js';
import { OnnxWireError, readModelInterface } from './read-model-interface.js';
import type { ModelInterface } from './read-model-interface.js';
import { longToNumber } from './long-to-number.js';

/** What Quoll reads from an ONNX file: its tensor interface and provenance. */
export interface OnnxModelInfo {
  /** Graph inputs the caller must feed (initializers excluded), in graph order. */
  inputs: TensorInfoDto[];
  /** Graph outputs, in graph order. */
  outputs: TensorInfoDto[];
  /** Operator sets the model imports; the default ONNX domain is `''`. */
  opsetImports: { domain: string; version: number }[];
  /** The tool that wrote the file (e.g. `skl2onnx`), or `''`. */
  producer: string;
}

/** ONNX `TensorProto.DataType` numbers → Quoll element type names. */
const ELEMENT_TYPES: ReadonlyMap<number, TensorElementType> = new Map<number, TensorElementType>([
  [1, 'float32'],
  [2, 'uint8'],
  [3, 'int8'],
  [4, 'uint16'],
  [5, 'int16'],
  [6, 'int32'],
  [7, 'int64'],
  [8, 'string'],
  [9, 'bool'],
  [10, 'float16'],
  [11, 'float64'],
  [12, 'uint32'],
  [13, 'uint64'],
]);

const EXPECTED = 'Upload an ONNX model file (.onnx, a serialized ModelProto).';

/**
 * Reads the inputs, outputs, opsets and producer of an ONNX model without running it.
 *
 * Throws `ApiError('invalid_model')` for anything that is not a parseable ONNX ModelProto
 * with a graph that has at least one input and one output, naming what is wrong.
 *
 * @example
 * const info = inspectOnnxModel(await readFile('rf_model.onnx'));
 * info.inputs; // [{ name: 'float_input', type: 'float32', shape: [null, 18] }]
 */
export function inspectOnnxModel(bytes: Uint8Array): OnnxModelInfo {
  if (bytes.byteLength === 0) throw invalid('The file is empty.');
  let model: ModelInterface;
  try {
    // Only the interface: tensor payloads and nodes are skipped by their length, not decoded.
    model = readModelInterface(bytes);
  } catch (error) {
    // Truncation and garbage are wire-format errors; both mean "not ONNX".
    if (error instanceof OnnxWireError)
      throw invalid(`The file cannot be read as an ONNX protobuf (${error.message}).`);
    throw error;
  }
  const graph = model.graph;
  // Random bytes sometimes decode as a ModelProto with no graph or no IR version: reject those too.
  if (!graph || model.irVersion <= 0) {
    throw invalid('The file parses as protobuf but holds no ONNX model graph (no graph or IR version).');
  }
  const initializers = new Set<string>(graph.initializerNames);
  const inputs = (graph.input ?? [])
    .filter((value) => !initializers.has(value.name ?? ''))
    .map((value) => tensorInfo(value, 'input'));
  const outputs = (graph.output ?? []).map((value) => tensorInfo(value, 'output'));
  if (inputs.length === 0) throw invalid('The model graph declares no inputs.');
  if (outputs.length === 0) throw invalid('The model graph declares no outputs.');
  return {
    inputs,
    outputs,
    opsetImports: model.opsetImport.map((opset) => ({
      domain: opset.domain ?? '',
      version: longToNumber(opset.version),
    })),
    producer: model.producerName ?? '',
  };
}

function tensorInfo(value: Onnx.IValueInfoProto, role: 'input' | 'output'): TensorInfoDto {
  const name = value.name;
  const tensorType = value.type?.tensorType;
  if (!name) throw invalid(`A graph ${role} has no name.`);
  if (!tensorType) {
    const kind = value.type?.sequenceType ? 'a sequence' : value.type?.mapType ? 'a map' : 'not a tensor';
    throw invalid(
      `Model ${role} "${name}" is ${kind}; Quoll serves tensor inputs and outputs only` +
        (role === 'output' ? ' (for scikit-learn classifiers, export with zipmap=False).' : '.'),
    );
  }
  const type = ELEMENT_TYPES.get(tensorType.elemType ?? 0);
  if (!type)
    throw invalid(
      `Model ${role} "${name}" has element type ${tensorType.elemType ?? 'undefined'}, which Quoll does not support.`,
    );
  // A missing shape means unknown rank; an empty dim list is reported as such.
  const shape = (tensorType.shape?.dim ?? []).map((dim): number | string | null => {
    if (dim.dimParam) return dim.dimParam;
    if (dim.dimValue !== null && dim.dimValue !== undefined) return longToNumber(dim.dimValue);
    return null;
  });
  return { name, type, shape };
}

function invalid(what: string): ApiError {
  return new ApiError('invalid_model', `Not a valid ONNX model: ${what} ${EXPECTED}`);
}
