import { createRequire } from 'node:module';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { arrow as sdkArrow, ValidationError, type Pipeline } from '@quoll/client';
import { lastRunEnded, readyOrchestration } from '../support/orchestration-helpers.js';
import { makeScaleModel } from '../support/synthetic-models.js';
import { startTestServer, type TestServer } from '../support/test-server.js';

/**
 * `infer()` with Tables of the user's own apache-arrow: versions 17, 18 and 21.1, and a second
 * copy of the SDK's own 21.2 (npm aliases in the root devDependencies), each a separate module.
 */
const require = createRequire(import.meta.url);
const COPIES = ['apache-arrow-17', 'apache-arrow-18', 'apache-arrow-21-1', 'apache-arrow-21-2'] as const;
type Arrow = typeof sdkArrow;
/** A Table of exactly this copy (`instanceof` is true across 21.2 copies: the prototype tells). */
const isCopyOf = (a: Arrow, value: unknown): boolean =>
  Object.prototype.isPrototypeOf.call(a.Table.prototype, value as object);
const load = (name: string): Arrow => require(name) as Arrow;

let server: TestServer;
let pipeline: Pipeline;

beforeAll(async () => {
  server = await startTestServer();
  const client = server.client();
  const model = await client.uploadModel('scale2', makeScaleModel({ width: 2, factor: 2 }));
  pipeline = await client.buildPipeline('arrowinterop');
  await pipeline.addModelStep(model);
  await pipeline.deploy();
});

afterAll(async () => {
  await server.stop();
  await server.cleanup();
});

/** A `tensor` column of FixedSizeList<Float32>[2] in the given copy. */
function tensorTable(a: Arrow, rows: number[][]): sdkArrow.Table {
  const type = new a.FixedSizeList(2, new a.Field('item', new a.Float32(), false));
  return new a.Table({ tensor: a.vectorFromArray(rows, type) });
}

function scaled(table: {
  getChild(name: string): { get(i: number): unknown } | null;
  numRows: number;
}): number[][] {
  const col = table.getChild('out.scaled');
  if (col === null) throw new Error('no out.scaled column');
  return Array.from({ length: table.numRows }, (_, i) => Array.from(col.get(i) as ArrayLike<number>));
}

describe.each(COPIES)('a Table of the user’s %s', (name) => {
  const user = load(name);
  const input = [
    [1, 2],
    [3, 4],
  ];

  it('infers (the result is a Table of the SDK’s apache-arrow)', async () => {
    const result = await pipeline.infer(tensorTable(user, input));
    expect(isCopyOf(sdkArrow, result)).toBe(true);
    expect(scaled(result)).toEqual([
      [2, 4],
      [6, 8],
    ]);
  });

  it('with { arrow } the result is a Table of the user’s copy, which its own tableToIPC writes in full', async () => {
    const result = await pipeline.infer(tensorTable(user, input), { arrow: user });
    expect(isCopyOf(user, result)).toBe(true);
    expect(isCopyOf(sdkArrow, result)).toBe(false);
    expect(scaled(result)).toEqual([
      [2, 4],
      [6, 8],
    ]);
    // The issue's trap: an older copy's tableToIPC of a foreign Table writes 0 bytes, silently.
    const bytes = user.tableToIPC(result, 'file');
    expect(bytes.byteLength).toBeGreaterThan(100);
    expect(scaled(user.tableFromIPC(bytes))).toEqual(scaled(result));
    expect(result.schema.fields.map((f) => f.name)).toEqual([
      'time',
      'in.tensor',
      'out.scaled',
      'check_failures',
    ]);
  });

  it('IPC bytes written by the user’s copy (stream format) give IPC file bytes back', async () => {
    const bytes = user.tableToIPC(tensorTable(user, input), 'stream');
    const answer = await pipeline.infer(bytes);
    expect(answer).toBeInstanceOf(Uint8Array);
    expect(scaled(user.tableFromIPC(answer))).toEqual([
      [2, 4],
      [6, 8],
    ]);
  });

  it('logs({ arrow }) reads the inference log into the user’s copy', async () => {
    const logs = await pipeline.logs({ arrow: user, limit: 1 });
    expect(isCopyOf(user, logs)).toBe(true);
    expect(logs.numRows).toBe(1);
    expect(logs.truncated).toBe(false);
  });
});

describe('what cannot work says why', () => {
  it('an object that is not an apache-arrow module', async () => {
    const table = tensorTable(load('apache-arrow-18'), [[1, 2]]);
    await expect(pipeline.infer(table, { arrow: { Table: class {} } as unknown as Arrow })).rejects.toThrow(
      /must be an apache-arrow module .*older than 15/,
    );
  });

  it('a column type the SDK’s apache-arrow does not know names the version mismatch and changes nothing', async () => {
    const before = (await pipeline.logs({ limit: 1000 })).length;
    const table = tensorTable(load('apache-arrow-21-2'), [[1, 2]]);
    Object.defineProperty(table.schema.fields[0], 'type', {
      value: { typeId: 42, toString: () => 'Future' },
    });
    const err = await pipeline.infer(table).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as Error).message).toMatch(
      /SDK uses its own apache-arrow \(\^21\.2\.0\), a different copy or version than the Table's/,
    );
    await pipeline.logs({ limit: 1 }); // the log is flushed on read
    expect((await pipeline.logs({ limit: 1000 })).length).toBe(before);
  });
});

describe('an orchestration with its own apache-arrow in package.json', () => {
  it('infers with Tables of its copy, gets its copy back with { arrow }, and the SDK’s Table otherwise', async () => {
    const client = server.client();
    const orchestration = await readyOrchestration(client, 'ownarrow', {
      'package.json': JSON.stringify({ dependencies: { 'apache-arrow': '18.1.0' } }),
      'main.ts': `
import * as arrow from 'apache-arrow';
import { Client, taskArgs } from '@quoll/client';

const client = new Client();
const pipeline = (await client.pipelinesByName(String(taskArgs().pipeline)))[0]!;
const type = new arrow.FixedSizeList(2, new arrow.Field('item', new arrow.Float32(), false));
const table = new arrow.Table({ tensor: arrow.vectorFromArray([[5, 6]], type) });
const mine = await pipeline.infer(table, { arrow });
const sdks = await pipeline.infer(table);
console.log(JSON.stringify({
  ownCopy: mine instanceof arrow.Table,
  out: Array.from(mine.getChild('out.scaled')!.get(0) as ArrayLike<number>),
  ipcBytes: arrow.tableToIPC(mine).byteLength > 0,
  sdkCopy: !(sdks instanceof arrow.Table),
}));
`,
    });
    const task = await orchestration.runOnce({ name: 'own arrow', jsonArgs: { pipeline: 'arrowinterop' } });
    const run = await lastRunEnded(task, 60_000);
    const lines = (await run.logs()).map((l) => l.line);
    expect(run.status, lines.join('\n')).toBe('success');
    const result = lines.find((l) => l.startsWith('{'));
    expect(JSON.parse(result ?? '{}')).toEqual({
      ownCopy: true,
      out: [10, 12],
      ipcBytes: true,
      sdkCopy: true,
    });
  });
});
