import type { TensorElementType } from '@quoll/client/wire';

/** Tensor data types of the Open Inference Protocol (KServe v2 / Triton). */
export type OpenInferenceDatatype =
  | 'BOOL'
  | 'UINT8'
  | 'UINT16'
  | 'UINT32'
  | 'UINT64'
  | 'INT8'
  | 'INT16'
  | 'INT32'
  | 'INT64'
  | 'FP16'
  | 'FP32'
  | 'FP64'
  | 'BYTES';

const BY_ELEMENT_TYPE: Readonly<Record<TensorElementType, OpenInferenceDatatype>> = {
  bool: 'BOOL',
  uint8: 'UINT8',
  uint16: 'UINT16',
  uint32: 'UINT32',
  uint64: 'UINT64',
  int8: 'INT8',
  int16: 'INT16',
  int32: 'INT32',
  int64: 'INT64',
  float16: 'FP16',
  float32: 'FP32',
  float64: 'FP64',
  string: 'BYTES',
};

/** The protocol's name for an ONNX element type (`float32` → `FP32`). */
export function openInferenceDatatype(type: TensorElementType): OpenInferenceDatatype {
  return BY_ELEMENT_TYPE[type];
}
