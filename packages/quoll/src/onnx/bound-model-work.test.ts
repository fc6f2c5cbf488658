import { readFileSync } from 'node:fs';
import onnxProto from 'onnx-proto';
import { describe, expect, it } from 'vitest';
import {
  makeCraftedSlowModel,
  makeMultiIoModel,
  makeScaleModel,
  makeSlowOnDemandModel,
  makeTreeEnsembleRegressor,
} from '../../../../test/support/synthetic-models.js';
import { hasSharedFixtures, SHARED_FIXTURES } from '../../../../test/support/shared-fixtures.js';
import { boundModelWork, NODE_WORK, PORT_WORK } from './bound-model-work.js';
import type { ModelWork } from './bound-model-work.js';
import { varint } from '../../../../test/support/protobuf-wire.js';

const { onnx } = onnxProto;
const { DataType } = onnx.TensorProto;
const { AttributeType } = onnx.AttributeProto;

/** The limits of an inline run: 64 rows, 16 Ki values. */
const LIMITS = { rows: 64, elements: 16384 };

function bounded(work: ModelWork): Extract<ModelWork, { bounded: true }> {
  if (!work.bounded) throw new Error(`expected a bound, got: ${work.reason}`);
  return work;
}

/** A model of `nodes` with float32 input x [N, width] and output y. */
function graphModel(
  nodes: onnxProto.onnx.INodeProto[],
  options: { width?: number | string; initializers?: onnxProto.onnx.ITensorProto[] } = {},
): Uint8Array {
  const dims = ['N', options.width ?? 4].map((dim) =>
    typeof dim === 'number' ? { dimValue: dim } : { dimParam: dim },
  );
  const tensorType = { elemType: DataType.FLOAT, shape: { dim: dims } };
  return onnx.ModelProto.encode(
    onnx.ModelProto.create({
      irVersion: 8,
      opsetImport: [{ domain: '', version: 15 }],
      graph: {
        name: 'test',
        node: nodes,
        initializer: options.initializers ?? [],
        input: [{ name: 'x', type: { tensorType } }],
        output: [{ name: 'y', type: { tensorType } }],
      },
    }),
  ).finish();
}

function node(
  opType: string,
  input: string[],
  output: string,
  attribute: onnxProto.onnx.IAttributeProto[] = [],
) {
  return onnx.NodeProto.create({ opType, input, output: [output], attribute });
}

describe('boundModelWork', () => {
  it('bounds an element-wise model by the declared width and the limits, exactly', () => {
    const work = bounded(boundModelWork(makeScaleModel({ width: 18 }), LIMITS));
    // x [64, 18] (1152 values) times a scalar: 1152 written, 1152 + 1 read, one node of 3 ports;
    // then the graph's output copied out.
    expect(work.work).toBe(1152 + 1153 + NODE_WORK + 3 * PORT_WORK + (PORT_WORK + 1152));
    expect(work.inputs.get('tensor')).toEqual({ dims: [64, 18], elements: 1152 });
    expect(work.outputs.get('scaled')).toEqual({ dims: [64, 18], elements: 1152 });
    // Two inputs, two outputs, a reduction over a known axis.
    const multi = bounded(boundModelWork(makeMultiIoModel(), LIMITS));
    expect(multi.outputs.get('sum_a')).toEqual({ dims: [64, 1], elements: 64 });
  });

  it('bounds a tree ensemble by its rows times the depth of its trees, not their size', () => {
    // 10 full trees of depth 4: 5 nodes on every path, one weight per leaf, one target.
    const work = bounded(boundModelWork(makeTreeEnsembleRegressor({ trees: 10, depth: 4 }), LIMITS));
    expect(work.work).toBe(64 * (10 * (5 + 1) + 1) + 64 * 18 + NODE_WORK + 2 * PORT_WORK + (PORT_WORK + 64));
    expect(work.outputs.get('variable')).toEqual({ dims: [64, 1], elements: 64 });
    // Twice as deep: the bound follows the depth (4 times the nodes would give far more).
    const deeper = bounded(boundModelWork(makeTreeEnsembleRegressor({ trees: 10, depth: 8 }), LIMITS));
    expect(deeper.work).toBe(
      64 * (10 * (9 + 1) + 1) + 64 * 18 + NODE_WORK + 2 * PORT_WORK + (PORT_WORK + 64),
    );
  });

  it.runIf(hasSharedFixtures)("bounds the tutorial's random forest", () => {
    const work = bounded(boundModelWork(readFileSync(`${SHARED_FIXTURES}rf_model.onnx`), LIMITS));
    expect(work.inputs.get('float_input')).toEqual({ dims: [64, 18], elements: 1152 });
    expect(work.work).toBeLessThan(2 ** 20);
  });

  it.each([
    ['broadcast', 16384 ** 2],
    ['gather', 16384 ** 2],
    ['self-product', 16384 ** 3],
  ] as const)('bounds the crafted %s model by a power of the values fed, as it runs', (kind, atLeast) => {
    const work = bounded(boundModelWork(makeCraftedSlowModel(kind), LIMITS));
    expect(work.work).toBeGreaterThanOrEqual(atLeast);
    // Fed 100 values at most, the same model is small: the bound is of the feed, not the graph.
    const small = bounded(boundModelWork(makeCraftedSlowModel(kind), { rows: 1, elements: 100 }));
    expect(small.work).toBeLessThan(kind === 'self-product' ? 2 * 100 ** 3 : 4 * 100 ** 2 + 10 * NODE_WORK);
  });

  it('has no bound for operators that size their output from values, nor for a shape computed from values', () => {
    expect(boundModelWork(makeSlowOnDemandModel(), LIMITS)).toEqual({
      bounded: false,
      reason: 'ConstantOfShape is not modelled',
    });
    // y = Reshape(x, Cast(x)): the shape is whatever the request sends.
    const computed = graphModel([
      node('Cast', ['x'], 'shape', [{ name: 'to', type: AttributeType.INT, i: DataType.INT64 }]),
      node('Reshape', ['x', 'shape'], 'y'),
    ]);
    expect(boundModelWork(computed, LIMITS)).toEqual({
      bounded: false,
      reason: "Reshape's shape is computed from values",
    });
  });

  it('has no bound for a cast of numbers to strings, whose time depends on the values (review F5)', () => {
    // y = Cast(Cast(x, string), float): formatting 1.8e308 writes hundreds of digits, 0 one.
    const formatted = graphModel([
      node('Cast', ['x'], 's', [{ name: 'to', type: AttributeType.INT, i: DataType.STRING }]),
      node('Cast', ['s'], 'y', [{ name: 'to', type: AttributeType.INT, i: DataType.FLOAT }]),
    ]);
    expect(boundModelWork(formatted, LIMITS)).toEqual({
      bounded: false,
      reason: 'Cast to strings (formatting a number takes time that depends on its value)',
    });
  });

  it('has no bound for a subgraph, an unknown domain or nodes out of order', () => {
    const branch = graphModel([
      node('If', ['x'], 'y', [{ name: 'then_branch', type: AttributeType.GRAPH, g: { name: 'then' } }]),
    ]);
    expect(boundModelWork(branch, LIMITS)).toMatchObject({ bounded: false, reason: 'If is not modelled' });
    const custom = graphModel([{ ...node('Gelu', ['x'], 'y'), domain: 'com.microsoft' }]);
    expect(boundModelWork(custom, LIMITS)).toMatchObject({
      bounded: false,
      reason: 'com.microsoft:Gelu is not modelled',
    });
    const backwards = graphModel([node('Relu', ['h'], 'y'), node('Relu', ['x'], 'h')]);
    expect(boundModelWork(backwards, LIMITS)).toEqual({
      bounded: false,
      reason: 'Relu reads "h" before any node makes it',
    });
  });

  it('has no bound for a tree ensemble whose branches loop', () => {
    const model = onnx.ModelProto.decode(makeTreeEnsembleRegressor({ trees: 2, depth: 3 }));
    const trees = model.graph!.node![0]!;
    const trueIds = trees.attribute!.find((a) => a.name === 'nodes_truenodeids')!;
    // Node 1 (a branch of tree 0) leads back to the root.
    trueIds.ints![1] = 0;
    const looped = onnx.ModelProto.encode(model).finish();
    expect(boundModelWork(looped, LIMITS)).toEqual({
      bounded: false,
      reason: 'TreeEnsembleRegressor has a cycle',
    });
  });

  it('has no bound for a string tensor of the model, whose length its element count does not bound', () => {
    // Review F1: one 400 000-character string gathered at the rows' indices and compared.
    const model = onnx.ModelProto.encode(
      onnx.ModelProto.create({
        irVersion: 8,
        opsetImport: [{ domain: '', version: 19 }],
        graph: {
          name: 'strings',
          node: [
            node('Gather', ['S', 'X'], 'Y'),
            node('Equal', ['Y', 'Y'], 'Z'),
            node('Cast', ['Z'], 'W', [{ name: 'to', type: AttributeType.INT, i: DataType.FLOAT }]),
          ],
          initializer: [
            { name: 'S', dataType: DataType.STRING, dims: [1], stringData: [Buffer.alloc(400_000, 'a')] },
          ],
          input: [
            {
              name: 'X',
              type: { tensorType: { elemType: DataType.INT64, shape: { dim: [{ dimParam: 'N' }] } } },
            },
          ],
          output: [
            {
              name: 'W',
              type: { tensorType: { elemType: DataType.FLOAT, shape: { dim: [{ dimParam: 'N' }] } } },
            },
          ],
        },
      }),
    ).finish();
    expect(boundModelWork(model, LIMITS)).toMatchObject({ bounded: false });
  });

  it('has no bound for a model whose graph field repeats (onnxruntime merges the graphs; a reader keeping one would miss the other)', () => {
    // Review F2: a hidden graph that multiplies its input by itself, then a visible Identity.
    const hidden = graphModel([
      node('Flatten', ['x'], 'f', [{ name: 'axis', type: AttributeType.INT, i: 0 }]),
      node('Transpose', ['f'], 't', [{ name: 'perm', type: AttributeType.INTS, ints: [1, 0] }]),
      node('MatMul', ['t', 'f'], 'o'),
      node('MatMul', ['o', 'o'], 'y'),
    ]);
    const visible = graphModel([node('Identity', ['x'], 'y')]);
    expect(bounded(boundModelWork(visible, LIMITS)).work).toBeLessThan(2 ** 20);
    const both = Buffer.concat([hidden, visible]);
    expect(boundModelWork(both, LIMITS)).toMatchObject({ bounded: false });
    // Nor a Constant whose value tensor repeats (merged: the dims of both).
    const constant = graphModel([
      node('Constant', [], 'c', [
        {
          name: 'value',
          type: AttributeType.TENSOR,
          t: { dataType: DataType.FLOAT, dims: [1], floatData: [0] },
        },
      ]),
      node('Add', ['x', 'c'], 'y'),
    ]);
    const repeated = onnx.ModelProto.decode(constant);
    const constantNode = onnx.NodeProto.encode(repeated.graph!.node![0]!).finish();
    const tensorField = onnx.AttributeProto.encode({
      t: { dataType: DataType.FLOAT, dims: [100_000], floatData: [] },
    }).finish();
    // The node with its value attribute's tensor given twice: append a second t to the attribute.
    const attribute = onnx.AttributeProto.encode(repeated.graph!.node![0]!.attribute![0]!).finish();
    const doubled = Buffer.concat([attribute, tensorField]);
    repeated.graph!.node![0]!.attribute = [];
    const rest = onnx.NodeProto.encode(repeated.graph!.node![0]!).finish();
    const nodeBytes = Buffer.concat([rest, Buffer.from([5 * 8 + 2]), varint(doubled.length), doubled]);
    expect(constantNode.length).toBeGreaterThan(0);
    repeated.graph!.node!.shift();
    const graphRest = onnx.GraphProto.encode(repeated.graph!).finish();
    repeated.graph = null;
    const modelRest = onnx.ModelProto.encode(repeated).finish();
    const graphBytes = Buffer.concat([
      Buffer.from([1 * 8 + 2]),
      varint(nodeBytes.length),
      nodeBytes,
      graphRest,
    ]);
    const withRepeatedValue = Buffer.concat([
      modelRest,
      Buffer.from([7 * 8 + 2]),
      varint(graphBytes.length),
      graphBytes,
    ]);
    expect(boundModelWork(withRepeatedValue, LIMITS)).toMatchObject({ bounded: false });
  });

  it('has no bound for a tree ensemble whose tree ids interleave (onnxruntime starts a root at every change)', () => {
    // Review F3: nodes of trees 0 and 1 listed alternately make every node a root.
    const model = onnx.ModelProto.decode(makeTreeEnsembleRegressor({ trees: 2, depth: 2 }));
    const trees = model.graph!.node![0]!;
    const order = [0, 7, 1, 8, 2, 9, 3, 10, 4, 11, 5, 12, 6, 13];
    for (const attribute of trees.attribute!)
      if (attribute.name!.startsWith('nodes_')) {
        if (attribute.ints?.length) attribute.ints = order.map((i) => attribute.ints![i] as number);
        if (attribute.floats?.length) attribute.floats = order.map((i) => attribute.floats![i]!);
        if (attribute.strings?.length) attribute.strings = order.map((i) => attribute.strings![i]!);
      }
    expect(boundModelWork(onnx.ModelProto.encode(model).finish(), LIMITS)).toEqual({
      bounded: false,
      reason: 'TreeEnsembleRegressor lists the nodes of a tree apart (tree 0)',
    });
  });

  it('charges a variadic Sum once per input over the whole output, and every node per input it reads', () => {
    // Review F4: Sum(C, X, C, C, ...) rewrites the broadcast output once per input.
    const sumOf = (inputs: string[]): number =>
      bounded(
        boundModelWork(
          graphModel([node('Sum', inputs, 'y')], {
            width: 16,
            initializers: [
              { name: 'c', dataType: DataType.FLOAT, dims: [1, 16], floatData: Array(16).fill(0) },
            ],
          }),
          LIMITS,
        ),
      ).work;
    // x [64, 16] (1024 values) and c [1, 16]: three more inputs, three more passes over 1024.
    expect(sumOf(['c', 'x', 'c', 'c', 'c']) - sumOf(['c', 'x'])).toBeGreaterThanOrEqual(3 * 1024);
    // Review F6: a node of many inputs (one name, 3 bytes each) is refused.
    const wide = graphModel([
      node('Concat', Array<string>(300).fill('x'), 'y', [{ name: 'axis', type: AttributeType.INT, i: 1 }]),
    ]);
    expect(boundModelWork(wide, LIMITS)).toEqual({
      bounded: false,
      reason: 'Concat has 300 inputs (more than 256)',
    });
  });

  it('keeps the values of a Concat only along one axis and for few of them, and refuses repeated graph outputs', () => {
    const shapeInit = (name: string) => ({
      name,
      dataType: DataType.INT64,
      dims: [2, 1],
      int64Data: [1, 1024],
    });
    // Review F9: on axis 1, onnxruntime interleaves [[1],[1024]] and [[1],[1024]]: not [1, 1024, 1, 1024].
    const interleaved = graphModel(
      [
        node('Concat', ['a', 'b'], 'pair', [{ name: 'axis', type: AttributeType.INT, i: 1 }]),
        node('Reshape', ['x', 'pair'], 'y'),
      ],
      { initializers: [shapeInit('a'), shapeInit('b')] },
    );
    expect(boundModelWork(interleaved, LIMITS)).toEqual({
      bounded: false,
      reason: "Reshape's shape is computed from values",
    });
    // Review F7: values doubled by 40 Concats are not carried (a trillion of them would abort the process).
    const doubling = [
      node('Concat', ['one', 'one'], 'c0', [{ name: 'axis', type: AttributeType.INT, i: 0 }]),
    ];
    for (let i = 1; i < 40; i++)
      doubling.push(
        node('Concat', [`c${i - 1}`, `c${i - 1}`], `c${i}`, [
          { name: 'axis', type: AttributeType.INT, i: 0 },
        ]),
      );
    doubling.push(node('Reshape', ['x', 'c39'], 'y'));
    const many = graphModel(doubling, {
      initializers: [{ name: 'one', dataType: DataType.INT64, dims: [1], int64Data: [1] }],
    });
    expect(boundModelWork(many, LIMITS)).toMatchObject({ bounded: false });
    // Review F8: one output listed many times costs onnxruntime a copy each.
    const twice = onnx.ModelProto.decode(graphModel([node('Relu', ['x'], 'y')]));
    twice.graph!.output!.push(twice.graph!.output![0]!);
    expect(boundModelWork(onnx.ModelProto.encode(twice).finish(), LIMITS)).toEqual({
      bounded: false,
      reason: 'output "y" is listed twice',
    });
  });

  it('bounds a free dimension by the limits, and a fed input by what feeds it', () => {
    const wide = bounded(boundModelWork(graphModel([node('Relu', ['x'], 'y')], { width: 'M' }), LIMITS));
    expect(wide.inputs.get('x')).toEqual({ dims: [64, 16384], elements: 16384 });
    const fed = bounded(
      boundModelWork(graphModel([node('Relu', ['x'], 'y')], { width: 'M' }), {
        ...LIMITS,
        given: new Map([['x', { dims: [64, 3], elements: 192 }]]),
      }),
    );
    expect(fed.inputs.get('x')).toEqual({ dims: [64, 64], elements: 192 });
    expect(fed.work).toBe(192 + NODE_WORK + 2 * PORT_WORK + (PORT_WORK + 192));
  });
});
