import {
  Field,
  FixedSizeList,
  Float32,
  Float64,
  List,
  RecordBatch,
  Schema,
  Struct,
  TimestampMillisecond,
  Uint32,
  makeData,
} from 'apache-arrow';
import type { Data } from 'apache-arrow';
import type { InferenceLogs, LogPage, LogQuery } from '../../logs/index.js';

/** A time origin for test rows: row `id` is logged at `LOG_T0 + id × 10` by {@link appendLogRows}. */
export const LOG_T0 = 1_700_000_000_000;

/** How the input column of {@link inferenceLogRows} is laid out: each is another schema. */
export type LogRowStyle =
  /** `in.tensor` FixedSizeList<Float32>[4] = [id, id + 0.5, 1, 2], as an Arrow inference logs it. */
  | 'arrow'
  /** `in.tensor` List<Float64> = [id, 7, 8], as a JSON-records inference logs it. */
  | 'json'
  /** `in.tensor` FixedSizeList<Float32>[width], every value `id`. */
  | { width: number };

/**
 * Inference-log rows as an inference appends them: `time`, `in.tensor` (see {@link LogRowStyle}),
 * `out.variable` = [id] and `check_failures` = 0.
 */
export function inferenceLogRows(ids: number[], times: number[], style: LogRowStyle = 'arrow'): RecordBatch {
  const n = ids.length;
  const timeType = new TimestampMillisecond();
  const time = makeData({
    type: timeType,
    length: n,
    data: BigInt64Array.from(times, (t) => BigInt(t)) as never,
  });
  let input: Data;
  if (style === 'json') {
    const values = new Float64Array(n * 3);
    ids.forEach((id, i) => values.set([id, 7, 8], i * 3));
    input = makeData({
      type: new List(new Field('item', new Float64(), true)),
      length: n,
      nullCount: 0,
      valueOffsets: Int32Array.from({ length: n + 1 }, (_, i) => i * 3),
      child: makeData({ type: new Float64(), length: n * 3, data: values }),
    });
  } else {
    const width = style === 'arrow' ? 4 : style.width;
    const values = new Float32Array(n * width);
    ids.forEach((id, i) => {
      if (style === 'arrow') values.set([id, id + 0.5, 1, 2], i * width);
      else values.fill(id, i * width, (i + 1) * width);
    });
    input = makeData({
      type: new FixedSizeList(width, new Field('item', new Float32(), false)),
      length: n,
      nullCount: 0,
      child: makeData({ type: new Float32(), length: n * width, data: values }),
    });
  }
  const out = makeData({
    type: new FixedSizeList(1, new Field('item', new Float32(), false)),
    length: n,
    nullCount: 0,
    child: makeData({ type: new Float32(), length: n, data: Float32Array.from(ids) }),
  });
  const checks = makeData({ type: new Uint32(), length: n, data: new Uint32Array(n) });
  const schema = new Schema([
    new Field('time', timeType, false),
    new Field('in.tensor', input.type, false),
    new Field('out.variable', out.type, false),
    new Field('check_failures', new Uint32(), false),
  ]);
  return new RecordBatch(
    schema,
    makeData({
      type: new Struct(schema.fields),
      length: n,
      nullCount: 0,
      children: [time, input, out, checks],
    }),
  );
}

/** `count` whole numbers from `from`. */
export const idRange = (from: number, count: number): number[] =>
  Array.from({ length: count }, (_, i) => from + i);

/** Batch `k` of 1000 rows of 18 floats (ids and times from k × 1000): about 88 kB stored in PostgreSQL. */
export const bigLogBatch = (k: number): RecordBatch =>
  inferenceLogRows(
    idRange(k * 1000, 1000),
    idRange(k * 1000, 1000).map((i) => LOG_T0 + i),
    { width: 18 },
  );

/** `count` rows with ids from `from` and times {@link LOG_T0} + id × 10, in one batch of `style`. */
export const logRowsFrom = (from: number, count: number, style: LogRowStyle = 'arrow'): RecordBatch =>
  inferenceLogRows(
    idRange(from, count),
    idRange(from, count).map((id) => LOG_T0 + id * 10),
    style,
  );

/** The ids (`out.variable`) of a page's rows, in page order. */
export function logPageIds(page: LogPage): number[] {
  const ids: number[] = [];
  for (const batch of page.table.batches) {
    const col = batch.getChild('out.variable');
    for (let i = 0; i < batch.numRows; i++) {
      ids.push((col?.get(i) as { get(i: number): number } | null)?.get(0) ?? NaN);
    }
  }
  return ids;
}

/** Appends `count` rows (ids from `from`, time = {@link LOG_T0} + id × 10) in batches of `batch`; no flush. */
export async function queueLogRows(
  store: InferenceLogs,
  pipelineId: number,
  from: number,
  count: number,
  batch = 50,
): Promise<void> {
  for (let i = 0; i < count; i += batch) {
    const ids = idRange(from + i, Math.min(batch, count - i));
    await store.append(
      pipelineId,
      inferenceLogRows(
        ids,
        ids.map((id) => LOG_T0 + id * 10),
      ),
    );
  }
}

/** {@link queueLogRows}, then a flush: only flushed rows are sure to be visible. */
export async function appendLogRows(
  store: InferenceLogs,
  pipelineId: number,
  from: number,
  count: number,
  batch = 50,
): Promise<void> {
  await queueLogRows(store, pipelineId, from, count, batch);
  await store.flush();
}

/** The ids of every page of a query, following its cursor to the end. */
export async function pageAllLogIds(
  store: InferenceLogs,
  pipelineId: number,
  q: LogQuery,
): Promise<number[][]> {
  const pages: number[][] = [];
  let cursor: string | undefined;
  for (let guard = 0; guard < 10_000; guard++) {
    const page = await store.query(pipelineId, { ...q, ...(cursor === undefined ? {} : { cursor }) });
    pages.push(logPageIds(page));
    if (page.nextCursor === null) return pages;
    cursor = page.nextCursor;
  }
  throw new Error('paging did not end');
}
