// The parts every test model is built of with onnx-proto (synthetic, deep-tree and hostile
// models alike): nodes, typed value infos, a TreeEnsembleRegressor from its arrays, and the
// encoded ModelProto.
import onnxProto from 'onnx-proto';
import type { onnx as Onnx } from 'onnx-proto';
import { floats, int, ints, string, strings } from './onnx-attributes.js';

const { onnx } = onnxProto;

export function node(
  opType: string,
  input: string[],
  output: string[],
  attribute: Onnx.IAttributeProto[] = [],
  domain = '',
): Onnx.INodeProto {
  return onnx.NodeProto.create({ opType, input, output, attribute, domain });
}

/** A tensor value of `elemType` (`onnx.TensorProto.DataType`); a string dimension is symbolic. */
export function valueInfo(name: string, elemType: number, shape: (number | string)[]): Onnx.IValueInfoProto {
  return onnx.ValueInfoProto.create({
    name,
    type: onnx.TypeProto.create({
      tensorType: onnx.TypeProto.Tensor.create({
        elemType,
        shape: onnx.TensorShapeProto.create({
          dim: shape.map((dim) =>
            typeof dim === 'number'
              ? onnx.TensorShapeProto.Dimension.create({ dimValue: dim })
              : onnx.TensorShapeProto.Dimension.create({ dimParam: dim }),
          ),
        }),
      }),
    }),
  });
}

export interface GraphParts {
  nodes: Onnx.INodeProto[];
  inputs: Onnx.IValueInfoProto[];
  outputs: Onnx.IValueInfoProto[];
  initializers?: Onnx.ITensorProto[];
  /** @default [{ domain: '', version: 15 }] */
  opsets?: { domain: string; version: number }[];
}

/** Who made a model, written into its ModelProto. */
export interface ModelHeader {
  producerName: string;
  graphName: string;
  /** @default 8 */
  irVersion?: number;
}

export function encodeModel(parts: GraphParts, header: ModelHeader): Uint8Array {
  return onnx.ModelProto.encode(
    onnx.ModelProto.create({
      irVersion: header.irVersion ?? 8,
      producerName: header.producerName,
      producerVersion: '1',
      opsetImport: (parts.opsets ?? [{ domain: '', version: 15 }]).map((opset) =>
        onnx.OperatorSetIdProto.create(opset),
      ),
      graph: onnx.GraphProto.create({
        name: header.graphName,
        node: parts.nodes,
        input: parts.inputs,
        output: parts.outputs,
        initializer: parts.initializers ?? [],
      }),
    }),
  ).finish();
}

/** The opsets of a graph with an `ai.onnx.ml` 1 tree ensemble. */
export const TREE_ENSEMBLE_OPSETS: { domain: string; version: number }[] = [
  { domain: '', version: 15 },
  { domain: 'ai.onnx.ml', version: 1 },
];

/** A TreeEnsembleRegressor's node and leaf arrays, one entry a node (or a leaf's target). */
export interface TreeEnsembleArrays {
  treeIds: number[];
  nodeIds: number[];
  featureIds: number[];
  modes: string[];
  values: number[];
  trueIds: number[];
  falseIds: number[];
  /** `nodes_missing_value_tracks_true`, left out when absent. */
  missingTracksTrue?: number[];
  targetTreeIds: number[];
  targetNodeIds: number[];
  targetWeights: number[];
  /** `base_values`, left out when absent. */
  baseValues?: number[];
}

/**
 * An `ai.onnx.ml` TreeEnsembleRegressor (opset 1–3) with one target, SUM of the trees, no post
 * transform.
 */
export function treeEnsembleRegressor(
  input: string,
  output: string,
  tree: TreeEnsembleArrays,
  name?: string,
): Onnx.INodeProto {
  const attribute = [
    ints('nodes_treeids', tree.treeIds),
    ints('nodes_nodeids', tree.nodeIds),
    ints('nodes_featureids', tree.featureIds),
    strings('nodes_modes', tree.modes),
    floats('nodes_values', tree.values),
    ints('nodes_truenodeids', tree.trueIds),
    ints('nodes_falsenodeids', tree.falseIds),
    ...(tree.missingTracksTrue ? [ints('nodes_missing_value_tracks_true', tree.missingTracksTrue)] : []),
    ints('target_treeids', tree.targetTreeIds),
    ints('target_nodeids', tree.targetNodeIds),
    ints(
      'target_ids',
      tree.targetNodeIds.map(() => 0),
    ),
    floats('target_weights', tree.targetWeights),
    ...(tree.baseValues ? [floats('base_values', tree.baseValues)] : []),
    int('n_targets', 1),
    string('post_transform', 'NONE'),
    string('aggregate_function', 'SUM'),
  ];
  return onnx.NodeProto.create({
    ...(name === undefined ? {} : { name }),
    opType: 'TreeEnsembleRegressor',
    domain: 'ai.onnx.ml',
    input: [input],
    output: [output],
    attribute,
  });
}
