// What the HTTP thread's Arrow decode costs in process (no HTTP, no server): one Arrow IPC file
// of 1000 rows × a float32 [18] FixedSizeList column `float_input` (values i % 97), as the
// Arrow 1000 bench sends, handled PROBE_CALLS times (default 20 000) per round for PROBE_ROUNDS
// rounds (default 15); prints the best 3 rounds in µs per call. PROBE_DIST is the quoll dist
// folder to load (default this build's; /work/base/packages/quoll/dist for main's). Modes:
//   decode  the route's decode: DecodePool.decodeInline when the build has it, else (main)
//           decodeJsonInline and then decode's promise, awaited
//   table   tableFromLayout of the body's layout (the layout read once)
//   feeds   buildFeeds of the decoded table for a float32 [N, 18] input `float_input`
// The arrowhttp lane's 6 December 01:22–01:30 rows were taken with throwaway copies of these
// loops (/tmp/ah-m4.mjs, ah-m5.mjs, ah-m7.mjs); this is them in one committed script.
// Run it under the bench lock, pinned, e.g.:
//   flock /tmp/quoll-bench.lock timeout 330 taskset -c 1 npx tsx bench/decode-inline-probe.ts decode
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import {
  Field,
  FixedSizeList,
  Float32,
  makeData,
  RecordBatch,
  Schema,
  Struct,
  Table,
  tableToIPC,
} from 'apache-arrow';

interface Input {
  kind: string;
  table?: Table;
}
interface Pool {
  decodeInline?(contentType: string, body: Uint8Array): Input | Promise<Input> | undefined;
  decodeJsonInline(contentType: string, body: Uint8Array): Input | undefined;
  decode(contentType: string, body: Uint8Array): Promise<Input>;
  close(): Promise<void>;
}

const mode = process.argv[2] ?? 'decode';
const here = fileURLToPath(new URL('.', import.meta.url));
const dist = resolve(process.env.PROBE_DIST ?? join(here, '../packages/quoll/dist'));
const CALLS = Number(process.env.PROBE_CALLS ?? 20_000);
const ROUNDS = Number(process.env.PROBE_ROUNDS ?? 15);
const CT = 'application/vnd.apache.arrow.file';
const load = async <T>(path: string): Promise<T> => (await import(pathToFileURL(join(dist, path)).href)) as T;

const values = new Float32Array(18_000).map((_, i) => i % 97);
const type = new FixedSizeList(18, new Field('item', new Float32(), false));
const fields = [new Field('float_input', type, false)];
const schema = new Schema(fields);
const leaf = makeData({ type: new Float32(), length: 18_000, nullCount: 0, data: values });
const column = makeData({ type, length: 1000, nullCount: 0, child: leaf });
const data = makeData({ type: new Struct(fields), length: 1000, nullCount: 0, children: [column] });
const body = Buffer.from(tableToIPC(new Table(schema, [new RecordBatch(schema, data)]), 'file'));

const { readArrowIpcLayout } = await load<{ readArrowIpcLayout(this: void, body: Uint8Array): object }>(
  'inference/decode/check-arrow-ipc.js',
);
const { tableFromLayout } = await load<{
  tableFromLayout(this: void, body: Uint8Array, layout: object): Table;
}>('inference/decode/table-from-layout.js');
const layout = readArrowIpcLayout(body);
const decoded: Input = { kind: 'arrow', table: tableFromLayout(body, layout) };

let pool: Pool | undefined;
let call: () => number | Promise<number>;
if (mode === 'decode') {
  const { DecodePool } = await load<{ DecodePool: new (options: object) => Pool }>(
    'inference/decode/decode-pool.js',
  );
  const decoder = new DecodePool({});
  pool = decoder;
  const rows = (input: Input): number => input.table?.numRows ?? 0;
  // As the route: an input answered at once is used at once (no await), a promise awaited.
  call = () => {
    const now =
      decoder.decodeInline !== undefined
        ? decoder.decodeInline(CT, body)
        : decoder.decodeJsonInline(CT, body);
    if (now === undefined) return decoder.decode(CT, body).then(rows);
    return now instanceof Promise ? now.then(rows) : rows(now);
  };
} else if (mode === 'table') {
  call = () => tableFromLayout(body, layout).numRows;
} else if (mode === 'feeds') {
  const binding = await load<{
    inputColumns(input: Input): string[];
    bindColumns(columns: readonly string[], inputs: readonly object[], tensorFields: null): object[];
    buildFeeds(input: Input, bindings: readonly object[]): unknown[];
  }>('inference/input-binding.js');
  const bindings = binding.bindColumns(
    binding.inputColumns(decoded),
    [{ name: 'float_input', type: 'float32', shape: ['N', 18] }],
    null,
  );
  call = () => binding.buildFeeds(decoded, bindings).length;
} else {
  throw new Error(`unknown mode ${mode}: decode, table or feeds`);
}

let sink = 0;
const rounds: number[] = [];
for (let round = 0; round < ROUNDS; round++) {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < CALLS; i++) {
    const got = call();
    sink += typeof got === 'number' ? got : await got;
  }
  rounds.push(Number(process.hrtime.bigint() - t0) / CALLS / 1000);
}
await pool?.close();
const best = rounds.sort((a, b) => a - b).slice(0, 3);
console.log(`${dist} ${mode}: µs per call, best 3 of ${ROUNDS}: ${best.map((x) => x.toFixed(2)).join(' ')}`);
if (sink === 0) console.log('(no rows)');
