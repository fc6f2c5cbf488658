import { MEDIA_TYPES } from '@quoll/client/wire';
import { ApiError } from '../errors/index.js';
import type { DecodedInference, EncodedInference, InferenceCodec, ServedModel } from './inference-codec.js';
import { MAX_ROW_RANK } from './decode/records-to-table.js';
import { refuseDeepJson } from './decode/refuse-deep-json.js';
import type { FeedSlab, NumericArrayConstructor } from './feed-slab.js';
import { YIELD_AFTER_MS, yieldToEventLoop } from './inference-result.js';
import type { InferenceResult } from './inference-result.js';
import { openInferenceDatatype } from './open-inference-datatype.js';
import type { OpenInferenceDatatype } from './open-inference-datatype.js';
import type { TensorData, WireTensor } from './tensor-data.js';

/** The header of the binary-tensor extension: how many leading bytes of the body are JSON. */
export const INFERENCE_HEADER_CONTENT_LENGTH = 'inference-header-content-length';

/** What an Open Inference request asks of the answer. */
export interface OpenInferenceRequest {
  /** The request's `id`, echoed in the answer. */
  id: string | undefined;
  /** The outputs asked for, in order, and whether each comes as binary data; null = all, as JSON. */
  outputs: { name: string; binary: boolean }[] | null;
  /** `parameters.binary_data_output`: every output as binary data unless it says otherwise. */
  binaryOutput: boolean;
}

/** Numeric data types a request may send (the engine feeds numbers; FP16 and BYTES it cannot). */
type NumericDatatype = Exclude<OpenInferenceDatatype, 'FP16' | 'BYTES'>;

type NumericData = Exclude<TensorData, string[]>;

interface NumericLayout {
  bytes: number;
  /** Integer types: the values they hold, [least, past the greatest); floats hold any number. */
  range?: readonly [number, number];
  array: NumericArrayConstructor<NumericData>;
}

const NUMERIC: Readonly<Record<NumericDatatype, NumericLayout>> = {
  // BOOL travels as one byte per value (the protocol's binary layout) and feeds as uint8.
  BOOL: { bytes: 1, array: Uint8Array },
  UINT8: {
    bytes: 1,
    range: [0, 2 ** 8],
    array: Uint8Array,
  },
  UINT16: {
    bytes: 2,
    range: [0, 2 ** 16],
    array: Uint16Array,
  },
  UINT32: {
    bytes: 4,
    range: [0, 2 ** 32],
    array: Uint32Array,
  },
  UINT64: {
    bytes: 8,
    range: [0, 2 ** 64],
    array: BigUint64Array,
  },
  INT8: {
    bytes: 1,
    range: [-(2 ** 7), 2 ** 7],
    array: Int8Array,
  },
  INT16: {
    bytes: 2,
    range: [-(2 ** 15), 2 ** 15],
    array: Int16Array,
  },
  INT32: {
    bytes: 4,
    range: [-(2 ** 31), 2 ** 31],
    array: Int32Array,
  },
  INT64: {
    bytes: 8,
    range: [-(2 ** 63), 2 ** 63],
    array: BigInt64Array,
  },
  FP32: { bytes: 4, array: Float32Array },
  FP64: { bytes: 8, array: Float64Array },
};

/** One decoded request tensor. */
export interface RequestTensor {
  name: string;
  shape: number[];
  datatype: NumericDatatype;
  values: Exclude<TensorData, string[]>;
}

/** Inputs or outputs a request may name: a request is a few tensors, not a list to clone for a while. */
export const MAX_OPEN_INFERENCE_TENSORS = 1024;

/**
 * The most dimensions an input's shape may have: the batch, then at most {@link MAX_ROW_RANK}
 * per row, as for JSON records and Arrow columns. Each dimension becomes a nested list type, and
 * what builds and reads those types recurses per level.
 */
export const MAX_OPEN_INFERENCE_RANK = MAX_ROW_RANK + 1;

/**
 * An Open Inference request body as read, before it meets a pipeline: its input tensors (typed
 * arrays, so it crosses from a decode worker by transfer) and what it asks of the answer.
 */
export interface OpenInferenceBody {
  tensors: RequestTensor[];
  id: string | undefined;
  /** The outputs asked for, each with its own `parameters.binary_data` (undefined: the request's); null when not given. */
  outputs: { name: string; binary: boolean | undefined }[] | null;
  /** `parameters.binary_data_output`. */
  binaryOutput: boolean;
}

/** What reads Open Inference bodies (the server's `DecodePool`, off the HTTP thread when large). */
export interface OpenInferenceBodyDecoder {
  decodeOpenInference(body: Uint8Array, headerLength: string | undefined): Promise<OpenInferenceBody>;
  /**
   * The body read at once on the calling thread when it is small enough to be (the server's
   * `DecodePool`: up to its inline size), else `undefined` (then {@link decodeOpenInference}
   * reads it). Throws what `decodeOpenInference` would reject with.
   */
  decodeOpenInferenceInline?(
    body: Uint8Array,
    headerLength: string | undefined,
  ): OpenInferenceBody | undefined;
}

/**
 * Reads an Open Inference body: the JSON part (the whole body, or its first
 * `Inference-Header-Content-Length` bytes) and the binary tensors after it. Runs in a decode
 * worker for large bodies, so it only reads and checks the body itself.
 *
 * With `slab` (a small body read on the HTTP thread), each input's values of at most
 * `FEED_SLAB_MAX_BYTES` are carved out of it instead of having an ArrayBuffer of their own (at
 * batch 1 a malloc, a free and the scavenger's sweep per request, as for JSON records' feeds):
 * the feed is then that region itself (`buildFeeds`), never handed to anyone else.
 * @throws ApiError `invalid_inference_input`, `invalid_tensor_shape`, `non_numeric_value`
 */
export function readOpenInferenceBody(
  body: Uint8Array,
  headerLength: string | undefined,
  slab?: FeedSlab,
): OpenInferenceBody {
  const { json, binary } = splitBody(body, headerLength);
  const header = parseHeader(json);
  const tensors = readInputs(header.inputs, binary, json.byteLength, slab);
  return { tensors, ...readOutputs(header) };
}

/**
 * The Open Inference Protocol v2 (KServe / Triton) inference body: JSON tensors
 * (`{"inputs": [{"name", "shape", "datatype", "data"}], "outputs"?: [...]}`) and the
 * binary-tensor extension (`Inference-Header-Content-Length` bytes of JSON, then each input
 * with `parameters.binary_data_size` as raw little-endian bytes, in input order), read by
 * `decoder` ({@link readOpenInferenceBody}, off the HTTP thread).
 *
 * Inputs go to the engine as tensors (`kind: 'tensors'`): each stands for the Arrow column of
 * nested FixedSizeLists it would be (rows = the first dimension), so binding, casting and logging
 * are exactly those of Quoll's own endpoint, without that column being built per request. The answer lists the last step's outputs
 * (or those asked for) as `{"name", "datatype", "shape", "data"}`, or as binary data when
 * asked (`parameters.binary_data` per output, `parameters.binary_data_output` for all).
 *
 * @example
 * const codec = openInferenceCodec(decodePool);
 * await service.infer(principal, address, codec, raw);
 */
export function openInferenceCodec(decoder: OpenInferenceBodyDecoder): InferenceCodec<OpenInferenceRequest> {
  return {
    decode(raw, served) {
      const headerLength = raw.header(INFERENCE_HEADER_CONTENT_LENGTH);
      // A small body is read here and now: no promise to await (at batch 1 a promise and its
      // await per request on the HTTP thread, which Quoll's own JSON endpoint does without).
      const inline = decoder.decodeOpenInferenceInline?.(raw.body, headerLength);
      if (inline !== undefined) return decodedOf(inline, served);
      return decoder.decodeOpenInference(raw.body, headerLength).then((body) => decodedOf(body, served));
    },
    encode: encodeAnswer,
  };
}

/**
 * The engine's input and the answer's request of a body: the tensors go to the engine as they
 * are (the feeds, the log rows and, when asked for, the result table are made from their
 * values, as from the Arrow columns they stand for).
 */
function decodedOf(body: OpenInferenceBody, served: ServedModel): DecodedInference<OpenInferenceRequest> {
  return {
    input: { kind: 'tensors', tensors: body.tensors, rows: body.tensors[0]!.shape[0]! },
    request: requestedOutputs(body, served),
  };
}

// ---------------------------------------------------------------- decoding

function invalid(message: string, details?: Record<string, unknown>): ApiError {
  return new ApiError('invalid_inference_input', message, details);
}

function splitBody(
  body: Uint8Array,
  declared: string | undefined,
): { json: Uint8Array; binary: Uint8Array | null } {
  if (declared === undefined) return { json: body, binary: null };
  const length = /^\d{1,15}$/.test(declared.trim()) ? Number(declared.trim()) : NaN;
  if (!Number.isSafeInteger(length) || length <= 0 || length > body.byteLength) {
    throw invalid(
      `Inference-Header-Content-Length "${declared}" is not a length within the body (${body.byteLength} bytes); send the byte length of the JSON part.`,
      { header: declared, bodyBytes: body.byteLength },
    );
  }
  return { json: body.subarray(0, length), binary: body.subarray(length) };
}

interface RequestHeader {
  id?: unknown;
  /** Checked by parseHeader: a non-empty list. */
  inputs: unknown[];
  outputs?: unknown;
  parameters?: unknown;
}

function parseHeader(json: Uint8Array): RequestHeader {
  // JSON.parse would build every level of a `[[[[…` flood before the checks below see it.
  refuseDeepJson(json);
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(json.buffer, json.byteOffset, json.byteLength).toString('utf8'));
  } catch (error) {
    throw invalid(
      `The body is not valid JSON (${(error as Error).message}); send {"inputs": [{"name", "shape", "datatype", "data"}]}.`,
    );
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed))
    throw invalid('The body must be a JSON object: {"inputs": [{"name", "shape", "datatype", "data"}]}.');
  const header = parsed as RequestHeader;
  if (!Array.isArray(header.inputs) || header.inputs.length === 0)
    throw invalid('The request has no "inputs"; send at least one input tensor.');
  if (header.inputs.length > MAX_OPEN_INFERENCE_TENSORS)
    throw invalid(
      `The request has ${header.inputs.length} inputs; a request takes at most ${MAX_OPEN_INFERENCE_TENSORS}.`,
    );
  return header;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** `count` values of `layout`'s type: carved out of `slab` when given and small enough, else an array of their own. */
function allocate(layout: NumericLayout, count: number, slab: FeedSlab | undefined): NumericData {
  return slab === undefined ? new layout.array(count) : slab.take(layout.array, count);
}

function readInputs(
  inputs: unknown[],
  binary: Uint8Array | null,
  jsonBytes: number,
  slab: FeedSlab | undefined,
): RequestTensor[] {
  const tensors: RequestTensor[] = [];
  let offset = 0;
  for (const [index, input] of inputs.entries()) {
    if (!isObject(input)) throw invalid(`Input ${index} is not an object.`, { input: index });
    const name = input.name;
    if (typeof name !== 'string' || name === '')
      throw invalid(`Input ${index} has no "name".`, { input: index });
    if (tensors.some((tensor) => tensor.name === name))
      throw invalid(`Input "${name}" is sent twice.`, { input: name });
    const datatype = readDatatype(name, input.datatype);
    const shape = readShape(name, input.shape);
    const count = shape.reduce((a, b) => a * b, 1);
    const parameters = isObject(input.parameters) ? input.parameters : {};
    const size = parameters.binary_data_size;
    let values: NumericData;
    if (size !== undefined) {
      const layout = NUMERIC[datatype];
      if (binary === null)
        throw invalid(
          `Input "${name}" has parameters.binary_data_size but the request has no Inference-Header-Content-Length header; send the header with the JSON part's byte length.`,
          { input: name },
        );
      if (typeof size !== 'number' || size !== count * layout.bytes)
        throw invalid(
          `Input "${name}" has binary_data_size ${JSON.stringify(size)} but shape [${shape.join(', ')}] of ${datatype} takes ${count * layout.bytes} bytes.`,
          { input: name, expected: count * layout.bytes, got: size },
        );
      if (offset + size > binary.byteLength)
        throw invalid(
          `Input "${name}" needs ${size} bytes of binary data but only ${binary.byteLength - offset} remain in the body.`,
          { input: name },
        );
      // A copy of its own: aligned for the typed array, and independent of the request buffer.
      values = allocate(layout, count, slab);
      const copy = new Uint8Array(values.buffer, values.byteOffset, size);
      copy.set(binary.subarray(offset, offset + size));
      // A BOOL is the byte 0 or 1: onnxruntime takes other bytes as they are (Not(7) is true).
      if (datatype === 'BOOL') {
        const at = copy.findIndex((byte) => byte > 1);
        if (at !== -1)
          throw invalid(
            `Input "${name}" value ${at} is the byte ${copy[at]!}, where a BOOL is 0 (false) or 1 (true).`,
            { input: name, index: at },
          );
      }
      offset += size;
    } else {
      // Every JSON value takes at least a byte: a shape holding more values than the JSON has
      // bytes cannot match its data, and must not make us allocate for it.
      if (count > jsonBytes)
        throw new ApiError(
          'invalid_tensor_shape',
          `Input "${name}" has shape [${shape.join(', ')}] (${count} values), more than its JSON data can hold; send exactly as many values as the shape says.`,
          { input: name, expected: count },
        );
      values = readJsonData(name, datatype, input.data, count, shape.length, slab);
    }
    tensors.push({ name, shape, datatype, values });
  }
  if (binary !== null && offset !== binary.byteLength)
    throw invalid(
      `The body has ${binary.byteLength - offset} bytes of binary data that no input claims; give each binary input parameters.binary_data_size.`,
    );
  const rows = tensors[0]!.shape[0]!;
  for (const tensor of tensors) {
    if (tensor.shape[0] !== rows)
      throw invalid(
        `Input "${tensor.name}" has ${tensor.shape[0]} rows (its first dimension) but input "${tensors[0]!.name}" has ${rows}; every input needs the same batch size.`,
        { input: tensor.name },
      );
  }
  return tensors;
}

function readDatatype(name: string, datatype: unknown): NumericDatatype {
  if (typeof datatype === 'string' && Object.hasOwn(NUMERIC, datatype)) return datatype as NumericDatatype;
  if (datatype === 'FP16' || datatype === 'BYTES')
    throw invalid(
      `Input "${name}" is ${datatype}; Quoll feeds numeric inputs only (BOOL, UINT8–64, INT8–64, FP32, FP64).`,
      { input: name, datatype },
    );
  throw invalid(
    `Input "${name}" has datatype ${JSON.stringify(datatype)}; use one of ${Object.keys(NUMERIC).join(', ')}.`,
    { input: name },
  );
}

function readShape(name: string, shape: unknown): number[] {
  if (
    !Array.isArray(shape) ||
    shape.length === 0 ||
    !shape.every((dim): dim is number => Number.isSafeInteger(dim) && (dim as number) >= 0)
  )
    throw invalid(
      `Input "${name}" has shape ${JSON.stringify(shape)}; send a list of non-negative integers whose first dimension is the batch size, e.g. [1, 18].`,
      { input: name },
    );
  if (shape.length > MAX_OPEN_INFERENCE_RANK)
    throw new ApiError(
      'invalid_tensor_shape',
      `Input "${name}" has a shape of ${shape.length} dimensions; send at most ${MAX_OPEN_INFERENCE_RANK} (the batch size, then at most ${MAX_ROW_RANK} per row).`,
      { input: name, rank: shape.length },
    );
  if (shape[0] === 0) throw invalid(`Input "${name}" has no rows (shape [0, …]); send at least one row.`);
  // The values must fit a request body anyway; a product past 2^31 is a lie, not a tensor.
  if (shape.reduce((a, b) => a * b, 1) > 2 ** 31)
    throw invalid(`Input "${name}" has shape [${shape.join(', ')}], far more values than any body holds.`, {
      input: name,
    });
  return shape;
}

function readJsonData(
  name: string,
  datatype: NumericDatatype,
  data: unknown,
  count: number,
  rank: number,
  slab: FeedSlab | undefined,
): NumericData {
  if (!Array.isArray(data))
    throw invalid(`Input "${name}" has no "data" array (nor parameters.binary_data_size).`, { input: name });
  const layout = NUMERIC[datatype];
  const values = allocate(layout, count, slab);
  // The common case, flat data of exactly `count` numbers for a float type (FP32, FP64): one
  // tight loop. At the first item that is not a number (a nested list, or a value to refuse)
  // the walk below starts over and reads every item as it always does.
  if (layout.range === undefined && datatype !== 'BOOL' && data.length === count) {
    const floats = values as Float32Array | Float64Array;
    let at = 0;
    for (; at < count; at++) {
      const value: unknown = data[at];
      if (typeof value !== 'number') break;
      floats[at] = value;
    }
    if (at === count) return values;
  }
  const big = values instanceof BigInt64Array || values instanceof BigUint64Array;
  // Stored in an integer array, 300 as INT8 would be 44 and 1.5 as INT32 1: refused instead.
  const [least, past] = layout.range ?? [-Infinity, Infinity];
  let index = 0;
  const write = (value: unknown): void => {
    if (index >= count) {
      index++;
      return;
    }
    let number: number;
    if (typeof value === 'number' && (datatype !== 'BOOL' || value === 0 || value === 1)) number = value;
    else if (typeof value === 'boolean' && datatype === 'BOOL') number = value ? 1 : 0;
    else
      throw new ApiError(
        'non_numeric_value',
        `Input "${name}" value ${index} is ${JSON.stringify(value)?.slice(0, 100)} where ${datatype === 'BOOL' ? 'true or false' : 'a number'} is expected.`,
        { input: name, index },
      );
    if (layout.range !== undefined && !(Number.isInteger(number) && number >= least && number < past))
      throw invalid(
        `Input "${name}" value ${index} is ${number}, which ${datatype} cannot hold; send integers from ${least} to ${BigInt(past) - 1n}.`,
        { input: name, index, datatype },
      );
    if (big) {
      (values as BigInt64Array)[index] = BigInt(number);
    } else {
      (values as Float64Array)[index] = number;
    }
    index++;
  };
  // Nested data (row-major, at most one list per dimension) is flattened with a stack of its
  // own, so no nesting can exhaust the thread's call stack.
  const stack: { list: unknown[]; at: number }[] = [{ list: data, at: 0 }];
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    if (top.at === top.list.length) {
      stack.pop();
      continue;
    }
    const item = top.list[top.at++];
    if (!Array.isArray(item)) {
      write(item);
      continue;
    }
    if (stack.length >= rank)
      throw new ApiError(
        'invalid_tensor_shape',
        `Input "${name}" has data nested deeper than its ${rank} dimension(s); send its values flat or one list per dimension.`,
        { input: name },
      );
    stack.push({ list: item, at: 0 });
  }
  if (index !== count)
    throw new ApiError(
      'invalid_tensor_shape',
      `Input "${name}" has ${index} values but its shape holds ${count}; send exactly as many values as the shape says.`,
      { input: name, expected: count, got: index },
    );
  return values;
}

function readOutputs(header: RequestHeader): Omit<OpenInferenceBody, 'tensors'> {
  const parameters = isObject(header.parameters) ? header.parameters : {};
  const binaryOutput = parameters.binary_data_output === true;
  const id = typeof header.id === 'string' ? header.id : undefined;
  if (header.outputs === undefined) return { id, outputs: null, binaryOutput };
  if (!Array.isArray(header.outputs))
    throw invalid('"outputs" must be a list of {"name": ...}.', { field: 'outputs' });
  if (header.outputs.length > MAX_OPEN_INFERENCE_TENSORS)
    throw invalid(
      `The request asks for ${header.outputs.length} outputs; a request names at most ${MAX_OPEN_INFERENCE_TENSORS}.`,
      { field: 'outputs' },
    );
  const named = new Set<string>();
  const outputs = header.outputs.map((output: unknown, index) => {
    const name = isObject(output) ? output.name : undefined;
    if (typeof name !== 'string') throw invalid(`Output ${index} has no "name".`, { output: index });
    // Each copy would be written in full: 1024 copies of one output, a thousandfold answer.
    if (named.has(name))
      throw invalid(`Output "${name}" is asked for twice; name each output once.`, { output: name });
    named.add(name);
    const own = isObject(output) && isObject(output.parameters) ? output.parameters.binary_data : undefined;
    return { name, binary: typeof own === 'boolean' ? own : undefined };
  });
  return { id, outputs, binaryOutput };
}

/** What the request asks of the answer, its output names checked against the pipeline's. */
function requestedOutputs(body: OpenInferenceBody, served: ServedModel): OpenInferenceRequest {
  const { id, binaryOutput } = body;
  if (body.outputs === null) return { id, outputs: null, binaryOutput };
  const known = served.outputs.map((output) => output.name);
  const outputs = body.outputs.map(({ name, binary }) => {
    if (!known.includes(name))
      throw new ApiError(
        'unknown_output',
        `Output "${name}" is not an output of pipeline "${served.name}"; its outputs are ${known.map((k) => `"${k}"`).join(', ')}.`,
        { output: name, outputs: known },
      );
    return { name, binary: binary ?? binaryOutput };
  });
  return { id, outputs: outputs.length === 0 ? null : outputs, binaryOutput };
}

// ---------------------------------------------------------------- encoding

interface OutputTensorJson {
  name: string;
  datatype: OpenInferenceDatatype;
  shape: number[];
  data?: unknown[];
  parameters?: { binary_data_size: number };
}

/**
 * Output values (all outputs together) up to which an all-JSON answer is written by hand
 * ({@link writtenAnswer}) rather than built as objects and arrays for `JSON.stringify`.
 */
const WRITTEN_JSON_VALUES = 4096;

/** Output values (all outputs together) from which a JSON answer is written in slices. */
const SLICED_JSON_VALUES = 65_536;

/** Output values written at once in a sliced JSON answer. */
const JSON_SLICE_VALUES = 32_768;

/**
 * The answer. A small one whose outputs are all JSON is written as text ({@link writtenAnswer});
 * other small ones are one `JSON.stringify`; when the outputs given as JSON hold more
 * than {@link SLICED_JSON_VALUES} values, their `data` is written slice by slice (the same
 * bytes), yielding to the event loop between slices, and the answer comes back as its parts.
 * Binary outputs follow the JSON header as their own parts (never copied into one buffer).
 */
function encodeAnswer(
  result: InferenceResult,
  request: OpenInferenceRequest,
  served: ServedModel,
): EncodedInference | Promise<EncodedInference> {
  const wanted =
    request.outputs ?? result.outputs.map((output) => ({ name: output.name, binary: request.binaryOutput }));
  const outputs: { entry: OutputTensorJson; tensor: WireTensor; binary: boolean }[] = [];
  let jsonValueCount = 0;
  for (const { name, binary } of wanted) {
    const tensor = result.outputs.find((output) => output.name === name);
    if (!tensor) continue;
    const entry: OutputTensorJson = {
      name,
      datatype: openInferenceDatatype(tensor.type),
      shape: tensor.dims,
    };
    outputs.push({ entry, tensor, binary });
    if (!binary) jsonValueCount += tensor.data.length;
  }
  if (jsonValueCount <= WRITTEN_JSON_VALUES && !outputs.some((output) => output.binary))
    return { contentType: MEDIA_TYPES.json, body: writtenAnswer(served, request.id, outputs) };
  const answer: Record<string, unknown> = { model_name: served.name, model_version: served.version };
  if (request.id !== undefined) answer.id = request.id;
  const chunks: Uint8Array[] = [];
  for (const { entry, tensor, binary } of outputs) {
    if (!binary) continue;
    const bytes = tensorBytes(tensor);
    entry.parameters = { binary_data_size: bytes.byteLength };
    chunks.push(bytes);
  }
  if (jsonValueCount > SLICED_JSON_VALUES) return slicedAnswer(answer, outputs, chunks);
  for (const { entry, tensor, binary } of outputs) if (!binary) entry.data = jsonValues(tensor);
  answer.outputs = outputs.map((output) => output.entry);
  const json = JSON.stringify(answer);
  if (chunks.length === 0) return { contentType: MEDIA_TYPES.json, body: json };
  const head = Buffer.from(json, 'utf8');
  return {
    contentType: MEDIA_TYPES.octetStream,
    body: Buffer.concat([head, ...chunks]),
    headers: { [INFERENCE_HEADER_CONTENT_LENGTH]: String(head.byteLength) },
  };
}

/**
 * A small answer whose outputs are all JSON, written as text: byte for byte what
 * `JSON.stringify` gives of the answer object (`model_name`, `model_version`, `id` when given,
 * then each output's `name`, `datatype`, `shape`, `data`), without that object, its entries and
 * the arrays of their values being built first (at batch 1 about 1 µs of the HTTP thread's
 * ~3 µs per request for the answer).
 */
function writtenAnswer(
  served: ServedModel,
  id: string | undefined,
  outputs: readonly { entry: OutputTensorJson; tensor: WireTensor }[],
): string {
  let json = `{"model_name":${JSON.stringify(served.name)},"model_version":${JSON.stringify(served.version)}`;
  if (id !== undefined) json += `,"id":${JSON.stringify(id)}`;
  json += ',"outputs":[';
  for (let i = 0; i < outputs.length; i++) {
    const { entry, tensor } = outputs[i]!;
    if (i > 0) json += ',';
    json += `{"name":${JSON.stringify(entry.name)},"datatype":"${entry.datatype}","shape":[${entry.shape.join(',')}],"data":[`;
    json += valuesText(tensor);
    json += ']}';
  }
  return `${json}]}`;
}

/** An output's values as `JSON.stringify` writes their {@link jsonValues}, without the brackets. */
function valuesText(tensor: WireTensor): string {
  const data = tensor.data;
  const count = data.length;
  let text = '';
  if (Array.isArray(data)) {
    for (let i = 0; i < count; i++) text += (i === 0 ? '' : ',') + JSON.stringify(data[i]);
  } else if (tensor.type === 'bool') {
    for (let i = 0; i < count; i++) text += (i === 0 ? '' : ',') + (data[i] !== 0 ? 'true' : 'false');
  } else if (tensor.type === 'float16') {
    for (let i = 0; i < count; i++)
      text += (i === 0 ? '' : ',') + numberText(halfToNumber(data[i] as number));
  } else if (data instanceof BigInt64Array || data instanceof BigUint64Array) {
    for (let i = 0; i < count; i++) text += (i === 0 ? '' : ',') + numberText(Number(data[i]));
  } else {
    const numbers = data as Float64Array;
    for (let i = 0; i < count; i++) text += (i === 0 ? '' : ',') + numberText(numbers[i]!);
  }
  return text;
}

/** A number as `JSON.stringify` writes it: as `String` does, and `null` for NaN and ±Infinity. */
function numberText(value: number): string {
  return value - value === 0 ? String(value) : 'null';
}

/**
 * An answer whose JSON outputs are large, as parts: what `JSON.stringify` of the whole answer
 * gives, each output's `data` written {@link JSON_SLICE_VALUES} values at a time; then the
 * binary outputs, if any.
 */
async function slicedAnswer(
  answer: Record<string, unknown>,
  outputs: readonly { entry: OutputTensorJson; tensor: WireTensor; binary: boolean }[],
  chunks: readonly Uint8Array[],
): Promise<EncodedInference> {
  const parts: Uint8Array[] = [];
  // `{"model_name":…,"outputs":[` then each entry, then `]}`.
  const shell = JSON.stringify({ ...answer, outputs: [] });
  parts.push(Buffer.from(shell.slice(0, -2)));
  let since = performance.now();
  for (const [i, { entry, tensor, binary }] of outputs.entries()) {
    const separator = i === 0 ? '' : ',';
    if (binary) {
      parts.push(Buffer.from(separator + JSON.stringify(entry)));
      continue;
    }
    // The entry without data, its closing brace replaced by the data key: `{"name":…,"shape":[…],"data":[`.
    parts.push(Buffer.from(`${separator}${JSON.stringify(entry).slice(0, -1)},"data":[`));
    const count = tensor.data.length;
    for (let start = 0; start < count; start += JSON_SLICE_VALUES) {
      const json = JSON.stringify(jsonValues(tensor, start, Math.min(count, start + JSON_SLICE_VALUES)));
      parts.push(Buffer.from(start === 0 ? json.slice(1, -1) : `,${json.slice(1, -1)}`));
      if (performance.now() - since >= YIELD_AFTER_MS) {
        await yieldToEventLoop();
        since = performance.now();
      }
    }
    parts.push(Buffer.from(']}'));
  }
  parts.push(Buffer.from(']}'));
  if (chunks.length === 0) return { contentType: MEDIA_TYPES.json, body: parts };
  let headLength = 0;
  for (const part of parts) headLength += part.byteLength;
  return {
    contentType: MEDIA_TYPES.octetStream,
    body: [...parts, ...chunks],
    headers: { [INFERENCE_HEADER_CONTENT_LENGTH]: String(headLength) },
  };
}

/** An output's values as raw little-endian bytes (BYTES: each string as a 4-byte length then UTF-8). */
function tensorBytes(tensor: WireTensor): Uint8Array {
  const data = tensor.data;
  if (Array.isArray(data)) {
    const parts: Buffer[] = [];
    for (const value of data) {
      const text = Buffer.from(value, 'utf8');
      const length = Buffer.alloc(4);
      length.writeUInt32LE(text.byteLength);
      parts.push(length, text);
    }
    return Buffer.concat(parts);
  }
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/**
 * An output's values [start, end) (all by default) as a flat JSON list (numbers; BOOL as
 * true/false; FP16 decoded).
 */
function jsonValues(tensor: WireTensor, start = 0, end = tensor.data.length): unknown[] {
  const whole = start === 0 && end === tensor.data.length;
  const data = tensor.data;
  if (Array.isArray(data)) return whole ? data : data.slice(start, end);
  const values = whole ? data : data.subarray(start, end);
  if (tensor.type === 'bool') return Array.from(values as Uint8Array, (value) => value !== 0);
  if (tensor.type === 'float16') return Array.from(values as Uint16Array, halfToNumber);
  if (values instanceof BigInt64Array || values instanceof BigUint64Array) return Array.from(values, Number);
  return Array.from(values as Float32Array);
}

function halfToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * 2 ** -14 * (fraction / 1024);
  if (exponent === 0x1f) return fraction ? NaN : sign * Infinity;
  return sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
}
