/**
 * Tree ensembles as deep as asked, for the check that keeps onnxruntime from building a tree
 * deep enough to overflow its stack (`checkTreeDepths`; review of 4 December, F2).
 */
import onnxProto from 'onnx-proto';
import type { onnx as Onnx } from 'onnx-proto';
import { floats, int, ints, strings } from './onnx-attributes.js';

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
      output: [valueInfo(output, ['N', 1])],
    });
    const elseBranch = onnx.GraphProto.create({
      name: `else${level}`,
      node: [node('Identity', ['x'], [`e${level}`], [])],
      output: [valueInfo(`e${level}`, ['N', 1])],
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
        input: [valueInfo('x', ['N', 1])],
        output: [valueInfo('y', ['N', 1])],
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
  return node(
    'TreeEnsembleRegressor',
    [input],
    [output],
    [
      ints(
        'nodes_treeids',
        nodeIds.map(() => 0),
      ),
      ints('nodes_nodeids', nodeIds),
      ints(
        'nodes_featureids',
        nodeIds.map(() => 0),
      ),
      strings('nodes_modes', modes),
      floats('nodes_values', values),
      ints('nodes_truenodeids', trueIds),
      ints('nodes_falsenodeids', falseIds),
      ints(
        'target_treeids',
        leaves.map(() => 0),
      ),
      ints('target_nodeids', leaves),
      ints(
        'target_ids',
        leaves.map(() => 0),
      ),
      floats(
        'target_weights',
        leaves.map((_, i) => i),
      ),
      int('n_targets', 1),
    ],
    'ai.onnx.ml',
  );
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

function node(
  opType: string,
  input: string[],
  output: string[],
  attribute: Onnx.IAttributeProto[],
  domain = '',
): Onnx.INodeProto {
  return onnx.NodeProto.create({ opType, input, output, attribute, domain });
}

function valueInfo(name: string, shape: (number | string)[]): Onnx.IValueInfoProto {
  return onnx.ValueInfoProto.create({
    name,
    type: onnx.TypeProto.create({
      tensorType: onnx.TypeProto.Tensor.create({
        elemType: DataType.FLOAT,
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

function tensor(name: string, kind: 'float' | 'uint8', values: number[]): Onnx.IAttributeProto {
  const t =
    kind === 'float'
      ? onnx.TensorProto.create({ dataType: DataType.FLOAT, dims: [values.length], floatData: values })
      : onnx.TensorProto.create({ dataType: DataType.UINT8, dims: [values.length], int32Data: values });
  return onnx.AttributeProto.create({ name, type: AttributeType.TENSOR, t });
}
