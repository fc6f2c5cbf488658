// ONNX node attributes for the models tests build with onnx-proto (synthetic, deep-tree and
// hostile models alike).
import onnxProto from 'onnx-proto';
import type { onnx as Onnx } from 'onnx-proto';

const { onnx } = onnxProto;
const { AttributeType } = onnx.AttributeProto;

export function ints(name: string, values: number[]): Onnx.IAttributeProto {
  return onnx.AttributeProto.create({ name, type: AttributeType.INTS, ints: values });
}

export function int(name: string, value: number): Onnx.IAttributeProto {
  return onnx.AttributeProto.create({ name, type: AttributeType.INT, i: value });
}

export function floats(name: string, values: number[]): Onnx.IAttributeProto {
  return onnx.AttributeProto.create({ name, type: AttributeType.FLOATS, floats: values });
}

export function strings(name: string, values: string[]): Onnx.IAttributeProto {
  return onnx.AttributeProto.create({
    name,
    type: AttributeType.STRINGS,
    strings: values.map((value) => Buffer.from(value)),
  });
}

export function string(name: string, value: string): Onnx.IAttributeProto {
  return onnx.AttributeProto.create({ name, type: AttributeType.STRING, s: Buffer.from(value) });
}
