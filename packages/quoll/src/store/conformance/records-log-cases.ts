import { InferenceResult } from '../../inference/inference-result.js';
import type { WireTensor } from '../../inference/tensor-data.js';

/**
 * JSON records results whose log rows the tests write both ways (the result's Arrow table, and
 * the `LogRowSource` of `InferenceResult.logRows()`), to compare them byte for byte. Each
 * `make` builds a fresh result (nothing cached between the two ways).
 */
export interface RecordsLogCase {
  name: string;
  /** Whether `logRows()` gives a source the staging copies when it is admitted (small, fixed-width). */
  staged: boolean;
  /**
   * Whether `admitLogRows` takes the source itself: every column fixed-width numbers. Small ones
   * are copied (`staged`); big ones (32 KiB and more) are kept and write themselves into the
   * hand-off's arena in slices. Otherwise its table is logged.
   */
  source: boolean;
  make: () => InferenceResult;
}

const TIME = 1_733_200_000_123;

/** `n` records of an 18-number `tensor` (the bench model's input), values i * 0.5 + j. */
function flatRecords(n: number): Record<string, unknown>[] {
  return Array.from({ length: n }, (_, i) => ({ tensor: Array.from({ length: 18 }, (_, j) => i * 0.5 + j) }));
}

/** `logFloat32`: per column, whether it fed a float32 model input (the log holds it as Float32). */
function resultOf(
  records: Record<string, unknown>[],
  columns: string[],
  outputs: WireTensor[],
  logFloat32: readonly boolean[] | null,
): InferenceResult {
  return new InferenceResult(
    { kind: 'records', records },
    columns,
    outputs,
    records.length,
    TIME,
    null,
    null,
    null,
    logFloat32,
  );
}

/**
 * The cases: the bench's shape, awkward values and many outputs, nested and scalar columns, and
 * two that fall back to the table; then each again with its first column feeding a float32
 * model input (logged as Float32: NaN, ±Infinity, -0, 1e308 and Number.MIN_VALUE among them).
 */
export function recordsLogCases(): RecordsLogCase[] {
  return [
    ...casesOf(false),
    ...casesOf(true).map((c) => ({ ...c, name: `${c.name}; the first column fed a float32 input` })),
  ];
}

function casesOf(firstFeedsFloat32: boolean): RecordsLogCase[] {
  const result = (
    records: Record<string, unknown>[],
    columns: string[],
    outputs: WireTensor[],
  ): InferenceResult =>
    resultOf(records, columns, outputs, firstFeedsFloat32 ? columns.map((_, i) => i === 0) : null);
  // The big cases twice the rows when the first column is logged as Float32 (half its bytes),
  // so that they are still 32 KiB or more: kept, and written at the hand-off.
  const big = firstFeedsFloat32 ? 2 : 1;
  return [
    {
      name: '100 records of 18 numbers, one float32 output',
      staged: true,
      source: true,
      make: () =>
        result(
          flatRecords(100),
          ['tensor'],
          [
            {
              name: 'variable',
              type: 'float32',
              dims: [100, 1],
              data: Float32Array.from({ length: 100 }, (_, i) => i * 1.25 - 3),
            },
          ],
        ),
    },
    {
      name: 'null, missing, boolean, string, -0 and huge values; five outputs of other types',
      staged: true,
      source: true,
      make: () => {
        // Float64Array assignment: null -> 0, undefined (a short row) -> NaN, 'x' -> NaN, '2.5' -> 2.5.
        const records: Record<string, unknown>[] = [
          { tensor: [1, null, 3, 4] },
          { tensor: [true, false, -0, 1e308] },
          { tensor: [0.1] },
          { tensor: ['2.5', 'x', Number.MIN_VALUE, -7, 99] },
          { tensor: [NaN, Infinity, -Infinity, 5] },
        ];
        const n = records.length;
        return result(
          records,
          ['tensor'],
          [
            {
              name: 'pair',
              type: 'float32',
              dims: [n, 2],
              data: Float32Array.from({ length: n * 2 }, (_, i) => i / 3),
            },
            {
              name: 'id',
              type: 'int64',
              dims: [n],
              data: BigInt64Array.from({ length: n }, (_, i) => BigInt(i) - 2n),
            },
            {
              name: 'grid',
              type: 'float64',
              dims: [n, 2, 3],
              data: Float64Array.from({ length: n * 6 }, (_, i) => (i % 4 === 0 ? NaN : i * -0.1)),
            },
            {
              name: 'half',
              type: 'float16',
              dims: [n, 1],
              data: Uint16Array.from({ length: n }, (_, i) => 0x3c00 + i),
            },
            { name: 'label', type: 'int32', dims: [n], data: Int32Array.from({ length: n }, (_, i) => -i) },
          ],
        );
      },
    },
    {
      name: 'a 2 x 3 column with a short row, a scalar column, a uint8 output',
      staged: true,
      source: true,
      make: () => {
        const records: Record<string, unknown>[] = [
          {
            image: [
              [1, 2, 3],
              [4, 5, 6],
            ],
            bias: 0.5,
          },
          {
            image: [
              [7, 8, 9],
              [10, 11],
            ],
            bias: null,
          },
          {
            image: [
              [12, 13, 14],
              [15, 16, 17],
            ],
            bias: true,
          },
        ];
        return result(
          records,
          ['image', 'bias'],
          [
            {
              name: 'mask',
              type: 'uint8',
              dims: [3, 4],
              data: Uint8Array.from({ length: 12 }, (_, i) => i * 20),
            },
          ],
        );
      },
    },
    {
      name: 'a bool output (not fixed-width numbers: the table is logged)',
      staged: false,
      source: false,
      make: () =>
        result(
          flatRecords(4),
          ['tensor'],
          [{ name: 'yes', type: 'bool', dims: [4, 1], data: Uint8Array.from([1, 0, 0, 1]) }],
        ),
    },
    {
      name: `${300 * big} records (32 KiB or more: the source is kept, written at the hand-off)`,
      staged: false,
      source: true,
      make: () =>
        result(
          flatRecords(300 * big),
          ['tensor'],
          [
            {
              name: 'variable',
              type: 'float32',
              dims: [300 * big, 1],
              data: Float32Array.from({ length: 300 * big }, (_, i) => i),
            },
          ],
        ),
    },
    {
      name: `${450 * big} records of a 2 x 3 column with short rows, a scalar column (big: kept, written at the hand-off)`,
      staged: false,
      source: true,
      make: () => {
        const records: Record<string, unknown>[] = Array.from({ length: 450 * big }, (_, i) => ({
          image:
            i % 97 === 5
              ? [[i, i + 1, i + 2], [i + 3]]
              : [
                  [i, i + 0.5, i + 1],
                  [i + 1.5, i + 2, i + 2.5],
                ],
          bias: i % 3 === 0 ? null : i * 0.25,
        }));
        return result(
          records,
          ['image', 'bias'],
          [
            {
              name: 'score',
              type: 'float64',
              dims: [450 * big, 2],
              data: Float64Array.from({ length: 900 * big }, (_, i) => i / 7),
            },
          ],
        );
      },
    },
  ];
}
