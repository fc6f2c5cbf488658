import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as sdkArrow from 'apache-arrow';
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../errors/index.js';
import { adoptTable, isArrowTableLike, isSdkTable } from './adopt-table.js';
import { checkArrowModule } from './arrow-module.js';
import { SDK_ARROW_RANGE } from './sdk-arrow.js';

/**
 * Users' own apache-arrow copies (npm aliases in the root devDependencies): older versions and a
 * second copy of the SDK's own version, each a separate module instance.
 */
const require = createRequire(import.meta.url);
const COPIES = ['apache-arrow-17', 'apache-arrow-18', 'apache-arrow-21-1', 'apache-arrow-21-2'] as const;
type Arrow = typeof sdkArrow;
const load = (name: string): Arrow => require(name) as Arrow;

/** Plain JSON of rows, comparable across copies (bigints as strings, vectors and typed arrays as arrays). */
function plain(value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString();
  if (value === null || typeof value !== 'object') return value;
  if (ArrayBuffer.isView(value)) return Array.from(value as unknown as ArrayLike<unknown>, plain);
  if (value instanceof Date) return value.toISOString();
  const withToArray = value as { toArray?: () => unknown };
  if (!Array.isArray(value) && typeof withToArray.toArray === 'function' && !('schema' in value)) {
    return plain(Array.from(withToArray.toArray() as ArrayLike<unknown>));
  }
  const withToJson = value as { toJSON?: () => unknown };
  if (!Array.isArray(value) && typeof withToJson.toJSON === 'function') return plain(withToJson.toJSON());
  if (Array.isArray(value)) return value.map(plain);
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]));
}

const rowsOf = (table: { toArray(): unknown[] }): unknown => plain(table.toArray());

/** A table with most column kinds a user sends, built with the given copy. */
function sampleTable(a: Arrow): sdkArrow.Table {
  const f32 = new a.Float32();
  const tensor = a.vectorFromArray(
    [
      [1, 2],
      [3, 4],
      [5, 6],
    ],
    new a.FixedSizeList(2, new a.Field('item', f32, false)),
  );
  const ragged = a.vectorFromArray(
    [[1.5, 2.5], [3.5], []],
    new a.List(new a.Field('item', new a.Float64(), true)),
  );
  const label = a.vectorFromArray(['a', null, 'c'], new a.Utf8());
  const category = a.vectorFromArray(['x', 'y', 'x'], new a.Dictionary(new a.Utf8(), new a.Int32()));
  const point = a.vectorFromArray(
    [
      { x: 1, y: 'p' },
      { x: 2, y: 'q' },
      { x: 3, y: null },
    ],
    new a.Struct([new a.Field('x', new a.Int32(), false), new a.Field('y', new a.Utf8(), true)]),
  );
  const flag = a.vectorFromArray([true, false, null], new a.Bool());
  const big = a.vectorFromArray([1n, -2n, 3n], new a.Int64());
  const when = a.vectorFromArray([0, 86_400_000, 1_700_000_000_000], new a.TimestampMillisecond());
  return new a.Table({ tensor, ragged, label, category, point, flag, big, when });
}

describe('adoptTable: Tables of other apache-arrow copies and versions', () => {
  it.each(COPIES)(
    '%s: the rebuilt Table has the same schema and rows, and the SDK writes IPC that copy reads back',
    (name) => {
      const user = load(name);
      expect(user.Table).not.toBe(sdkArrow.Table);
      const table = sampleTable(user);
      // (apache-arrow 21.2 answers instanceof true for every 21.2 copy; the prototype tells.)
      expect(isSdkTable(table)).toBe(false);
      expect(isArrowTableLike(table)).toBe(true);

      const adopted = adoptTable(table);
      expect(isSdkTable(adopted)).toBe(true);
      expect(adopted.schema.fields.map((f) => `${f.name}: ${String(f.type)}`)).toEqual(
        table.schema.fields.map((f) => `${f.name}: ${String(f.type)}`),
      );
      expect(rowsOf(adopted)).toEqual(rowsOf(table));

      // Through the SDK's writer and the user's own reader: nothing lost, nothing empty.
      const bytes = sdkArrow.tableToIPC(adopted, 'file');
      const back = user.tableFromIPC(bytes);
      expect(back.numRows).toBe(3);
      expect(rowsOf(back)).toEqual(rowsOf(table));
    },
  );

  it.each(COPIES)('%s: sliced and multi-batch Tables keep their offsets', (name) => {
    const user = load(name);
    const table = sampleTable(user);
    const twoBatches = table.concat(sampleTable(user).slice(1));
    expect(twoBatches.batches.length).toBe(2);
    expect(rowsOf(adoptTable(twoBatches))).toEqual(rowsOf(twoBatches));
    const sliced = twoBatches.slice(2, 4);
    expect(rowsOf(adoptTable(sliced))).toEqual(rowsOf(sliced));
  });

  it('shares the column buffers instead of copying them', () => {
    const user = load('apache-arrow-18');
    const values = new Float32Array([1, 2, 3, 4]);
    const child = user.makeData({ type: new user.Float32(), length: 4, data: values });
    const list = user.makeData({
      type: new user.FixedSizeList(2, new user.Field('item', new user.Float32(), false)),
      length: 2,
      nullCount: 0,
      child,
    });
    const adopted = adoptTable(new user.Table({ tensor: new user.Vector([list]) }));
    expect(adopted.getChild('tensor')?.data[0]?.children[0]?.values).toBe(values);
  });

  it('a Table of the SDK copy is returned as it is', () => {
    const table = sampleTable(sdkArrow);
    expect(adoptTable(table)).toBe(table);
  });

  it('a type the SDK copy does not know fails with a message that names the version mismatch', () => {
    const user = load('apache-arrow-21-2');
    const table = sampleTable(user);
    // What a newer apache-arrow's Table with a type added after the SDK's version looks like.
    const field = table.schema.fields[0] as unknown as { type: { typeId: number } };
    Object.defineProperty(field, 'type', { value: { typeId: 99, toString: () => 'FutureType' } });
    let error: unknown;
    try {
      adoptTable(table);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ValidationError);
    expect((error as ValidationError).code).toBe('invalid_inference_input');
    expect((error as Error).message).toContain('column "tensor" (Arrow type id 99, FutureType)');
    expect((error as Error).message).toContain(
      `its own apache-arrow (${SDK_ARROW_RANGE}), a different copy or version`,
    );
    expect((error as Error).message).toContain('infer(table, { arrow })');
  });

  it('a Table of an apache-arrow older than 9 (no batch data) is refused with the reason', () => {
    const old = { schema: { fields: [] }, batches: [{ chunks: [] }], numRows: 1 };
    expect(() => adoptTable(old)).toThrow(/older than 9/);
  });
});

describe('checkArrowModule', () => {
  it('accepts every copy and refuses what is not an apache-arrow ≥ 15', () => {
    for (const name of COPIES) expect(checkArrowModule(load(name), 'arrow')).toBe(load(name));
    expect(() => checkArrowModule({ Table: class {} }, 'infer() option arrow')).toThrow(
      /infer\(\) option arrow must be an apache-arrow module .* has no tableToIPC, tableFromIPC, so it is an apache-arrow older than 15 or not one/,
    );
    expect(() => checkArrowModule(null, 'arrow')).toThrow(ValidationError);
  });

  it("SDK_ARROW_RANGE is the client package's apache-arrow dependency", () => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
      dependencies: Record<string, string>;
    };
    expect(SDK_ARROW_RANGE).toBe(pkg.dependencies['apache-arrow']);
  });
});
