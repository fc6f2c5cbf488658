/**
 * Tree ensembles as deep as asked, for the check that keeps onnxruntime from building a tree
 * deep enough to overflow its stack (`checkTreeDepths`; review of 4 December, F2).
 */
import onnxProto from 'onnx-proto';
import type { onnx as Onnx } from 'onnx-proto';
import { int, ints } from './onnx-attributes.js';
import { node, treeEnsembleRegressor, valueInfo } from './onnx-graph.js';

const { onnx } = onnxProto;
const { AttributeType } = onnx.AttributeProto;
const { DataType } = onnx.TensorProto;

/** Options of {@link makeChainTree}. */
export interface ChainTreeOptions {
  /** Levels below the root (a stump is 1): the chain's branch nodes, each with a leaf of its own. */
  depth: number;
  /** `v3`: TreeEnsembleRegressor (`ai.onnx.ml` 1); `v5`: TreeEnsemble (`ai.onnx.ml` 5). @default 'v3' */
  op?: 'v3' | 'v5';
  /** Put the tree in the then-branch of an `If` nested this many times. @default 0 */
  nestedInIf?: number;
}

/**
 * One chain-shaped tree, float32 [N, 1] → float32 [N, 1]: branch k sends `x <= k` to a leaf of
 * its own, the rest to branch k + 1; the last branch's two children are leaves. `depth` branch
 * nodes, so `depth` levels below the root, each one native frame when onnxruntime builds it.
 */
export function makeChainTree(options: ChainTreeOptions): Uint8Array {
  const { depth, op = 'v3', nestedInIf = 0 } = options;
  let graphNodes: Onnx.INodeProto[] = [op === 'v3' ? chainV3(depth, 'x', 'y0') : chainV5(depth, 'x', 'y0')];
  let output = 'y0';
  for (let level = 0; level < nestedInIf; level++) {
    const next = `y${level + 1}`;
    const thenBranch = onnx.GraphProto.create({
      name: `then${level}`,
      node: graphNodes,
      output: [valueInfo(output, DataType.FLOAT, ['N', 1])],
    });
    const elseBranch = onnx.GraphProto.create({
      name: `else${level}`,
      node: [node('Identity', ['x'], [`e${level}`], [])],
      output: [valueInfo(`e${level}`, DataType.FLOAT, ['N', 1])],
    });
    graphNodes = [
      node(
        'If',
        ['cond'],
        [next],
        [
          onnx.AttributeProto.create({ name: 'then_branch', type: AttributeType.GRAPH, g: thenBranch }),
          onnx.AttributeProto.create({ name: 'else_branch', type: AttributeType.GRAPH, g: elseBranch }),
        ],
      ),
    ];
    output = next;
  }
  graphNodes.push(node('Identity', [output], ['y'], []));
  return onnx.ModelProto.encode(
    onnx.ModelProto.create({
      irVersion: 10,
      producerName: 'quoll-test',
      opsetImport: [
        onnx.OperatorSetIdProto.create({ domain: '', version: 21 }),
        onnx.OperatorSetIdProto.create({ domain: 'ai.onnx.ml', version: op === 'v3' ? 3 : 5 }),
      ],
      graph: onnx.GraphProto.create({
        name: 'chain',
        node: graphNodes,
        input: [valueInfo('x', DataType.FLOAT, ['N', 1])],
        output: [valueInfo('y', DataType.FLOAT, ['N', 1])],
        initializer:
          nestedInIf > 0
            ? [onnx.TensorProto.create({ name: 'cond', dataType: DataType.BOOL, dims: [], int32Data: [1] })]
            : [],
      }),
    }),
  ).finish();
}

function chainV3(depth: number, input: string, output: string): Onnx.INodeProto {
  const nodeIds: number[] = [];
  const modes: string[] = [];
  const values: number[] = [];
  const trueIds: number[] = [];
  const falseIds: number[] = [];
  const leaves: number[] = [];
  // Branch k is node 2k, its own leaf 2k + 1; the last branch's false leaf is node 2·depth.
  for (let k = 0; k < depth; k++) {
    nodeIds.push(2 * k, 2 * k + 1);
    modes.push('BRANCH_LEQ', 'LEAF');
    values.push(k, 0);
    trueIds.push(2 * k + 1, 0);
    falseIds.push(k === depth - 1 ? 2 * depth : 2 * k + 2, 0);
    leaves.push(2 * k + 1);
  }
  nodeIds.push(2 * depth);
  modes.push('LEAF');
  values.push(0);
  trueIds.push(0);
  falseIds.push(0);
  leaves.push(2 * depth);
  return treeEnsembleRegressor(input, output, {
    treeIds: nodeIds.map(() => 0),
    nodeIds,
    featureIds: nodeIds.map(() => 0),
    modes,
    values,
    trueIds,
    falseIds,
    targetTreeIds: leaves.map(() => 0),
    targetNodeIds: leaves,
    targetWeights: leaves.map((_, i) => i),
  });
}

function chainV5(depth: number, input: string, output: string): Onnx.INodeProto {
  // Branch k is node k; leaf k is branch k's true leaf, leaf `depth` the last branch's false leaf.
  const branches = Array.from({ length: depth }, (_, k) => k);
  return node(
    'TreeEnsemble',
    [input],
    [output],
    [
      ints(
        'nodes_featureids',
        branches.map(() => 0),
      ),
      tensor('nodes_splits', 'float', branches),
      tensor(
        'nodes_modes',
        'uint8',
        branches.map(() => 0),
      ),
      ints('nodes_truenodeids', branches),
      ints(
        'nodes_trueleafs',
        branches.map(() => 1),
      ),
      ints(
        'nodes_falsenodeids',
        branches.map((k) => (k === depth - 1 ? depth : k + 1)),
      ),
      ints(
        'nodes_falseleafs',
        branches.map((k) => (k === depth - 1 ? 1 : 0)),
      ),
      ints('tree_roots', [0]),
      ints(
        'leaf_targetids',
        [...branches, depth].map(() => 0),
      ),
      tensor('leaf_weights', 'float', [...branches, depth]),
      int('n_targets', 1),
      int('aggregate_function', 1),
      int('post_transform', 0),
    ],
    'ai.onnx.ml',
  );
}

function tensor(name: string, kind: 'float' | 'uint8', values: number[]): Onnx.IAttributeProto {
  const t =
    kind === 'float'
      ? onnx.TensorProto.create({ dataType: DataType.FLOAT, dims: [values.length], floatData: values })
      : onnx.TensorProto.create({ dataType: DataType.UINT8, dims: [values.length], int32Data: values });
  return onnx.AttributeProto.create({ name, type: AttributeType.TENSOR, t });
}
