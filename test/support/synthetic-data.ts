/**
 * Input data the project makes for itself: house-like feature rows and Arrow tables of them.
 * Deterministic for a given seed.
 */
import { writeFile } from 'node:fs/promises';
import { Field, FixedSizeList, Float32, makeData, Table, tableToIPC, Vector } from 'apache-arrow';

/**
 * A small deterministic PRNG (mulberry32): returns a function giving floats in [0, 1).
 */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Typical [low, high] of the tutorial's 18 house features, in column order: bedrooms, bathrooms,
 * sqft_living, sqft_lot, floors, waterfront, view, condition, grade, sqft_above, sqft_basement,
 * lat, long, sqft_living15, sqft_lot15, age, renovated, years since renovation.
 */
export const HOUSE_FEATURE_RANGES: readonly (readonly [number, number])[] = [
  [1, 6],
  [1, 4],
  [600, 5000],
  [1000, 20000],
  [1, 3],
  [0, 1],
  [0, 4],
  [1, 5],
  [5, 12],
  [600, 4500],
  [0, 1500],
  [47.2, 47.8],
  [-122.5, -121.7],
  [800, 4500],
  [1000, 20000],
  [0, 115],
  [0, 1],
  [0, 60],
];

/**
 * `n` rows of realistic house features (row-major, `width` values per row). Widths past 18
 * repeat the 18 features' ranges, for the heavier 29-feature benchmark model.
 * @param width values per row. @default 18
 */
export function makeHouseRows(n: number, seed: number, width = 18): Float32Array {
  const random = mulberry32(seed);
  const out = new Float32Array(n * width);
  for (let row = 0; row < n; row++) {
    const bedrooms = 1 + Math.floor(random() * 6);
    const living = Math.round(600 + random() * 4400);
    const above = Math.round(living * (0.6 + 0.4 * random()));
    const age = Math.floor(random() * 115);
    const renovated = random() < 0.05 ? 1 : 0;
    const house = [
      bedrooms,
      1 + Math.round(random() * 12) / 4,
      living,
      Math.round(1000 + random() * 19000),
      1 + Math.round(random() * 4) / 2,
      random() < 0.02 ? 1 : 0,
      random() < 0.9 ? 0 : Math.ceil(random() * 4),
      1 + Math.floor(random() * 5),
      5 + Math.floor(random() * 8),
      above,
      living - above,
      47.2 + random() * 0.6,
      -122.5 + random() * 0.8,
      Math.round(800 + random() * 3700),
      Math.round(1000 + random() * 19000),
      age,
      renovated,
      renovated ? Math.floor(random() * Math.min(age + 1, 60)) : 0,
    ];
    for (let col = 0; col < width; col++) {
      const base = house[col % 18] ?? 0;
      // Columns past 18 jitter the repeated feature a little so they are not exact copies.
      out[row * width + col] = col < 18 ? base : base * (0.9 + 0.2 * random());
    }
  }
  return out;
}

/**
 * An Arrow table with one `FixedSizeList<Float32>[width]` column built on `values`
 * without copying (the tutorial's `tensor` column shape).
 * @param columnName @default 'tensor'
 */
export function makeArrowTensorTable(values: Float32Array, width: number, columnName = 'tensor'): Table {
  if (values.length % width !== 0)
    throw new Error(`values (${values.length}) is not a multiple of width ${width}`);
  const child = makeData({ type: new Float32(), length: values.length, data: values });
  const type = new FixedSizeList(width, new Field('item', new Float32(), false));
  const data = makeData({ type, length: values.length / width, nullCount: 0, child });
  return new Table({ [columnName]: new Vector([data]) });
}

/** The table as Arrow IPC file bytes. */
export function tableToIpcFile(table: Table): Uint8Array {
  return tableToIPC(table, 'file');
}

/** Writes the table to `path` as an Arrow IPC file. */
export async function writeArrowFile(table: Table, path: string): Promise<void> {
  await writeFile(path, tableToIpcFile(table));
}
