import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import onnxProto from 'onnx-proto';
import { afterAll, describe, expect, it } from 'vitest';
import { ApiError } from '../errors/index.js';
import { makeChainTree } from '../../../../test/support/deep-tree-models.js';
import { delimited } from '../../../../test/support/protobuf-wire.js';
import { makeTreeEnsembleRegressor } from '../../../../test/support/synthetic-models.js';
import {
  hasSharedFixtures as hasFixtures,
  SHARED_FIXTURES,
} from '../../../../test/support/shared-fixtures.js';
import { checkTreeDepths, MAX_TREE_DEPTH } from './index.js';

const scratch = mkdtempSync(join(tmpdir(), 'quoll-tree-depths-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));
let files = 0;

/** The model written to a file of its own, for the check that reads a file a node at a time. */
function file(bytes: Uint8Array): string {
  const path = join(scratch, `model-${files++}.onnx`);
  writeFileSync(path, bytes);
  return path;
}

function refusalOf(model: string | Uint8Array): ApiError {
  try {
    checkTreeDepths(model);
  } catch (error) {
    if (error instanceof ApiError) return error;
    throw error;
  }
  throw new Error('checkTreeDepths accepted the model');
}

/** The refusal of the bytes, which the refusal of their file repeats word for word. */
function refusal(bytes: Uint8Array): ApiError {
  const error = refusalOf(bytes);
  expect(refusalOf(file(bytes)).message).toBe(error.message);
  return error;
}

/** The bytes and their file are both accepted. */
function accepts(bytes: Uint8Array): void {
  checkTreeDepths(bytes);
  checkTreeDepths(file(bytes));
}

describe('checkTreeDepths', () => {
  it('accepts a TreeEnsembleRegressor whose tree is exactly MAX_TREE_DEPTH deep and refuses one level more', () => {
    expect(MAX_TREE_DEPTH).toBe(1024);
    accepts(makeChainTree({ depth: MAX_TREE_DEPTH }));
    const error = refusal(makeChainTree({ depth: MAX_TREE_DEPTH + 1 }));
    expect(error.code).toBe('invalid_model');
    expect(error.message).toContain('tree 0 of a TreeEnsembleRegressor node is 1025 levels deep');
    expect(error.message).toContain('more than the 1024 Quoll loads');
    expect(error.details).toEqual({ treeDepth: 1025, maxTreeDepth: 1024 });
  });

  it('reads the trees of a TreeEnsemble (ai.onnx.ml 5) too, whose leaves are a list of their own', () => {
    accepts(makeChainTree({ depth: MAX_TREE_DEPTH, op: 'v5' }));
    const error = refusal(makeChainTree({ depth: MAX_TREE_DEPTH + 1, op: 'v5' }));
    expect(error.message).toContain('tree 0 of a TreeEnsemble node is 1025 levels deep');
  });

  it('finds a deep tree inside the nested subgraphs of If nodes', () => {
    accepts(makeChainTree({ depth: MAX_TREE_DEPTH, nestedInIf: 3 }));
    // The reviewer's crash (F2): 6000 levels, one If down.
    const error = refusal(makeChainTree({ depth: 6000, nestedInIf: 1 }));
    expect(error.message).toContain('is 6000 levels deep');
    expect(refusal(makeChainTree({ depth: 2000, op: 'v5', nestedInIf: 3 })).message).toContain(
      'is 2000 levels deep',
    );
  });

  it("finds a deep tree inside a function of the model's own (onnxruntime inlines it at load)", () => {
    const { onnx } = onnxProto;
    const model = onnx.ModelProto.decode(makeChainTree({ depth: MAX_TREE_DEPTH + 1 }));
    const tree = model.graph!.node![0]!;
    model.functions = [
      onnx.FunctionProto.create({
        name: 'deep',
        domain: 'local',
        input: ['x'],
        output: ['y0'],
        node: [tree],
        opsetImport: [onnx.OperatorSetIdProto.create({ domain: 'ai.onnx.ml', version: 3 })],
      }),
    ];
    model.graph!.node![0] = onnx.NodeProto.create({
      opType: 'deep',
      domain: 'local',
      input: ['x'],
      output: ['y0'],
    });
    model.opsetImport.push(onnx.OperatorSetIdProto.create({ domain: 'local', version: 1 }));
    expect(refusal(onnx.ModelProto.encode(model).finish()).message).toContain('is 1025 levels deep');
  });

  it('reads an attribute whose name is not its first field (any writer may order fields so)', () => {
    const { onnx } = onnxProto;
    const model = onnx.ModelProto.decode(makeChainTree({ depth: MAX_TREE_DEPTH + 1 }));
    const tree = model.graph!.node![0]!;
    const attributes = tree.attribute!.map((attribute) => {
      const bytes = onnx.AttributeProto.encode(attribute).finish();
      // Its first field is the name (key 0x0a, a one-byte length): moved to the end.
      expect(bytes[0]).toBe(0x0a);
      const name = bytes.subarray(0, 2 + bytes[1]!);
      return Buffer.concat([bytes.subarray(name.byteLength), name]);
    });
    const node = Buffer.concat([
      delimited(1, Buffer.from('x')),
      delimited(2, Buffer.from('y0')),
      delimited(4, Buffer.from(tree.opType!)),
      delimited(7, Buffer.from(tree.domain!)),
      ...attributes.map((attribute) => delimited(5, attribute)),
    ]);
    model.graph!.node = model.graph!.node!.slice(1);
    // A second graph field holding the node (onnxruntime's parser merges the two).
    const bytes = Buffer.concat([onnx.ModelProto.encode(model).finish(), delimited(7, delimited(1, node))]);
    expect(refusal(bytes).message).toContain('is 1025 levels deep');
  });

  it('measures every node with ids when another list falls short (errs on the deep side)', () => {
    const { onnx } = onnxProto;
    for (const [op, list] of [
      ['v3', 'nodes_truenodeids'],
      ['v3', 'nodes_modes'],
      ['v5', 'nodes_truenodeids'],
    ] as const) {
      const model = onnx.ModelProto.decode(makeChainTree({ depth: MAX_TREE_DEPTH + 1, op }));
      const attribute = model.graph!.node![0]!.attribute!.find((a) => a.name === list)!;
      // Half the list: the chain's lower half keeps its false children (nodes_modes: every node
      // past the half reads as a branch, its leaves' ids 0 then lead back to the root).
      if (list === 'nodes_modes') attribute.strings = attribute.strings!.slice(0, MAX_TREE_DEPTH);
      else attribute.ints = (attribute.ints as number[]).slice(0, MAX_TREE_DEPTH / 2);
      const error = refusal(onnx.ModelProto.encode(model).finish());
      expect(error.message).toMatch(list === 'nodes_modes' ? /a cycle/ : /is 1025 levels deep/);
    }
  });

  it('refuses a tree whose branches loop back (onnxruntime would recurse along the loop first)', () => {
    const { onnx } = onnxProto;
    const model = onnx.ModelProto.decode(makeChainTree({ depth: 10 }));
    const falseIds = model.graph!.node![0]!.attribute!.find((a) => a.name === 'nodes_falsenodeids')!;
    // The last branch (node 18) leads back to the root instead of to its false leaf.
    (falseIds.ints as number[])[18] = 0;
    const error = refusal(onnx.ModelProto.encode(model).finish());
    expect(error.code).toBe('invalid_model');
    expect(error.message).toContain('a cycle');
  });

  it('accepts real forests, and leaves bytes that are not protobuf to onnxruntime', () => {
    accepts(makeTreeEnsembleRegressor({ trees: 100, depth: 8 }));
    accepts(Uint8Array.from([0xff, 0xff, 0xff]));
    accepts(new Uint8Array(0));
    // A graph field whose length runs past the file: left to onnxruntime.
    accepts(Uint8Array.from([0x3a, 0x7f, 0x0a]));
  });

  it.skipIf(!hasFixtures)("accepts the tutorial's random forest", () => {
    checkTreeDepths(readFileSync(`${SHARED_FIXTURES}rf_model.onnx`));
    checkTreeDepths(`${SHARED_FIXTURES}rf_model.onnx`);
  });
});
