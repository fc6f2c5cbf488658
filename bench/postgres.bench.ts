// A node on PostgreSQL beside the embedded default, in one run (interleaved, median of 3):
//  1. inference-log ingest rows/s: the embedded store (segment files, SQLite index) vs a
//     cluster node's store (Arrow batches in PostgreSQL, see docs/distributed.md), each
//     after a first small append has started its writer thread,
//  2. a 1000-row page on a large log in PostgreSQL (--rows, default 10 000 000): a time range,
//     and the newest rows,
//  3. infer over HTTP, Arrow IPC batch 1000, c=1: a `--database` node vs an embedded server,
//     after a CHECKPOINT (the parts before leave PostgreSQL writing out their rows), in rounds
//     of one 3 s window per server, the order rotating round by round. Warm-up rounds (at least
//     QUOLL_BENCH_PG_INFER_WARMUP_ROUNDS, default 8, more while a server is still getting
//     faster, at most QUOLL_BENCH_PG_INFER_WARMUP_MAX, default 14) are printed, not counted;
//     then QUOLL_BENCH_PG_INFER_ROUNDS (default 12) measured rounds. The figure is the median
//     of the per-round ratios (each round's node window over its embedded window), printed with
//     their quartiles; the ratio of the two servers' median windows is printed beside it.
//     QUOLL_BENCH_PG_INFER_AA=1 adds a second embedded server (an A/A: its ratio to the first
//     is the measure's own noise); QUOLL_BENCH_PG_INFER_CAP=<bytes> adds a node on a database
//     of its own whose per-pipeline log cap is that many bytes (a node at its retention cap);
//     with QUOLL_BENCH_PG_INFER_CAP_BASE=<path of another build's dist/cli/main.js>, a second
//     node at its cap runs that build, on a database of its own (an A/B of the node's code);
//     QUOLL_BENCH_PG_INFER_BASE=<path of another build's dist/cli/main.js> adds a node of that
//     build at the default cap, on a database of its own (the same A/B, as the target is measured).
// Needs PostgreSQL (QUOLL_TEST_PG_URL, default postgres://postgres@127.0.0.1:5432/postgres);
// creates and drops its own databases. Run: npm run bench -- postgres [-- --rows 1000000]
// QUOLL_BENCH_PG_PARTS=infer (or ingest,pages, comma-separated) runs only those parts.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  Field,
  FixedSizeList,
  Float32,
  RecordBatch,
  Schema,
  Struct,
  TimestampMillisecond,
  Uint32,
  makeData,
} from 'apache-arrow';
import pg from 'pg';
import { Client } from '@quoll/client';
import { InferenceLogStore, type InferenceLogs } from '../packages/quoll/src/logs/index.js';
import { openStore } from '../packages/quoll/src/store/index.js';
import { createTestDatabase } from '../test/support/postgres-test-database.js';
import { makeArrowTensorTable, makeHouseRows, tableToIpcFile } from '../test/support/synthetic-data.js';
import { makeTreeEnsembleRegressor } from '../test/support/synthetic-models.js';
import { median, percentile, printTable, waitFor, writeResults } from './support.js';

const argRows = process.argv.indexOf('--rows');
const LARGE_ROWS = argRows > 0 ? Number(process.argv[argRows + 1]) : 10_000_000;
const PARTS = new Set(
  (process.env.QUOLL_BENCH_PG_PARTS ?? 'ingest,pages,infer').split(',').map((p) => p.trim()),
);
// Infer: rounds of 3 s windows per server before the measured rounds. Each server's CPU per
// request halves over its first ~7 windows (about 20 s of requests: V8 compiling the request
// path and the isolates' code, a node's log writer with the `pg` driver's), then stays flat;
// without these rounds the median window was one of them (docs/benchmarks.md). Past the
// minimum, warm-up goes on while any server's last 3 windows average more than 5 % above its
// 3 before (still getting faster), up to the maximum: the same rule for every server.
const INFER_WARMUP_ROUNDS = Number(process.env.QUOLL_BENCH_PG_INFER_WARMUP_ROUNDS ?? 8);
const INFER_WARMUP_MAX = Math.max(
  INFER_WARMUP_ROUNDS,
  Number(process.env.QUOLL_BENCH_PG_INFER_WARMUP_MAX ?? 14),
);
// Measured rounds: with 4, the rounds' ratios spread 0.73–1.12 in one quiet run (each window
// is 3 s on 2 shared cores), so the median of 4 moved by ±0.05 from run to run. A multiple of
// 2 and 3, so that with the order rotating each server takes each position equally often.
const INFER_ROUNDS = Number(process.env.QUOLL_BENCH_PG_INFER_ROUNDS ?? 12);
const INFER_AA = process.env.QUOLL_BENCH_PG_INFER_AA === '1';
const INFER_CAP = process.env.QUOLL_BENCH_PG_INFER_CAP;
const INFER_CAP_BASE = process.env.QUOLL_BENCH_PG_INFER_CAP_BASE;
const INFER_BASE = process.env.QUOLL_BENCH_PG_INFER_BASE;
const T0 = 1_700_000_000_000;
const WIDTH = 18;
const ts = new TimestampMillisecond();
const inType = new FixedSizeList(WIDTH, new Field('item', new Float32(), false));
const outType = new FixedSizeList(1, new Field('item', new Float32(), false));
const schema = new Schema([
  new Field('time', ts, false),
  new Field('in.tensor', inType, false),
  new Field('out.variable', outType, false),
  new Field('check_failures', new Uint32(), false),
]);

function batch(first: number, n: number): RecordBatch {
  const time = new BigInt64Array(n);
  for (let i = 0; i < n; i++) time[i] = BigInt(T0 + first + i);
  const children = [
    makeData({ type: ts, length: n, data: time as never }),
    makeData({
      type: inType,
      length: n,
      child: makeData({
        type: new Float32(),
        length: n * WIDTH,
        data: new Float32Array(n * WIDTH).fill(1.5),
      }),
    }),
    makeData({
      type: outType,
      length: n,
      child: makeData({ type: new Float32(), length: n, data: new Float32Array(n) }),
    }),
    makeData({ type: new Uint32(), length: n, data: new Uint32Array(n) }),
  ];
  return new RecordBatch(schema, makeData({ type: new Struct(schema.fields), length: n, children }));
}

type Backend = 'sqlite' | 'postgres';

/** The embedded store (files, SQLite index) or a cluster node's (PostgreSQL), fresh. */
async function logStore(
  backend: Backend,
  pgUrl: string,
  schemaName: string,
): Promise<{ store: InferenceLogs; close: () => Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'quoll-pgbench-'));
  const stores =
    backend === 'sqlite'
      ? await openStore({ kind: 'sqlite', path: join(dir, 'quoll.db') })
      : await openStore({ kind: 'postgres', url: pgUrl, schema: schemaName });
  const caps = { maxBytesPerPipeline: 1024 ** 4, maxBytesTotal: 1024 ** 4 };
  const store: InferenceLogs =
    stores.createInferenceLogStore !== null
      ? stores.createInferenceLogStore({ nodeId: 'bench', ...caps })
      : await InferenceLogStore.open({ dir: join(dir, 'logs'), index: stores.logIndex, ...caps });
  return {
    store,
    close: async () => {
      await store.stop();
      await stores.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const db = await createTestDatabase();
const results: Record<string, unknown> = { largeRows: LARGE_ROWS };
const rowsTable: (string | number)[][] = [];
let schemas = 0;
let capDb: Awaited<ReturnType<typeof createTestDatabase>> | null = null;
let capBaseDb: Awaited<ReturnType<typeof createTestDatabase>> | null = null;
let baseDb: Awaited<ReturnType<typeof createTestDatabase>> | null = null;
try {
  // 1. Ingest: 1 M rows in 1000-row batches per run, S P S P …
  if (PARTS.has('ingest')) {
    const batches = Array.from({ length: 1000 }, (_, i) => batch(i * 1000, 1000));
    const ingest: Record<Backend, number[]> = { sqlite: [], postgres: [] };
    for (let r = 0; r < 3; r++) {
      for (const backend of ['sqlite', 'postgres'] as const) {
        const { store, close } = await logStore(backend, db.url, `ingest${++schemas}`);
        // Steady state: both writer threads up (the embedded store's open waits for its thread,
        // a node's store starts its own in the background) and the pipeline's log begun.
        await store.append(1, batch(-10, 10));
        await store.flush();
        const t = performance.now();
        for (const b of batches) await store.append(1, b);
        await store.flush();
        ingest[backend].push(1_000_000 / ((performance.now() - t) / 1000));
        await close();
      }
    }
    results.ingest = { sqliteRowsPerSec: median(ingest.sqlite), postgresRowsPerSec: median(ingest.postgres) };
    rowsTable.push([
      'log ingest, batch 1000 (rows/s)',
      Math.round(median(ingest.sqlite)),
      Math.round(median(ingest.postgres)),
      (median(ingest.postgres) / median(ingest.sqlite)).toFixed(2),
    ]);
  }

  // 2. 1000-row pages on LARGE_ROWS rows in PostgreSQL: a time range, and the newest rows.
  if (PARTS.has('pages')) {
    const { store, close } = await logStore('postgres', db.url, 'large');
    const t = performance.now();
    for (let first = 0; first < LARGE_ROWS; first += 1000) await store.append(1, batch(first, 1000));
    await store.flush();
    const loadRowsPerSec = LARGE_ROWS / ((performance.now() - t) / 1000);
    const range: number[] = [];
    const newest: number[] = [];
    for (let i = 0; i < 300; i++) {
      const start = T0 + Math.floor(Math.random() * (LARGE_ROWS - 1000));
      let at = performance.now();
      const page = await store.query(1, { start, end: start + 999 });
      range.push(performance.now() - at);
      if (page.rows !== 1000) throw new Error(`page had ${page.rows} rows`);
      at = performance.now();
      const last = await store.query(1, { limit: 1000 });
      newest.push(performance.now() - at);
      if (last.rows !== 1000) throw new Error(`newest page had ${last.rows} rows`);
    }
    results.rangePage1000 = { rows: LARGE_ROWS, p50Ms: median(range), loadRowsPerSec };
    results.newestPage1000 = { rows: LARGE_ROWS, p50Ms: median(newest) };
    await close();
  }

  // 3. Infer over HTTP: an embedded server and a node on PostgreSQL, same model and body.
  if (PARTS.has('infer')) {
    const cli = fileURLToPath(new URL('../packages/quoll/dist/cli/main.js', import.meta.url));
    const body = tableToIpcFile(makeArrowTensorTable(makeHouseRows(1000, 1), WIDTH));
    const model = makeTreeEnsembleRegressor({ seed: 1 });
    if (INFER_CAP !== undefined) capDb = await createTestDatabase();
    if (INFER_CAP !== undefined && INFER_CAP_BASE !== undefined) capBaseDb = await createTestDatabase();
    if (INFER_BASE !== undefined) baseDb = await createTestDatabase();
    const configs: { name: string; args: string[]; env: NodeJS.ProcessEnv; cli?: string }[] = [
      { name: 'embedded', args: [], env: {} },
      { name: 'postgres node', args: ['--database', db.url], env: {} },
      ...(baseDb !== null && INFER_BASE !== undefined
        ? [{ name: 'postgres node, base build', args: ['--database', baseDb.url], env: {}, cli: INFER_BASE }]
        : []),
      ...(INFER_AA ? [{ name: 'embedded B', args: [], env: {} }] : []),
      ...(capDb !== null && INFER_CAP !== undefined
        ? [
            {
              name: 'node at cap',
              args: ['--database', capDb.url],
              env: { QUOLL_LOG_MAX_BYTES_PER_PIPELINE: INFER_CAP },
            },
          ]
        : []),
      ...(capBaseDb !== null && INFER_CAP !== undefined && INFER_CAP_BASE !== undefined
        ? [
            {
              name: 'node at cap, base build',
              args: ['--database', capBaseDb.url],
              env: { QUOLL_LOG_MAX_BYTES_PER_PIPELINE: INFER_CAP },
              cli: INFER_CAP_BASE,
            },
          ]
        : []),
    ];
    const servers: { name: string; child: ChildProcess; url: string; home: string; token: string }[] = [];
    for (const { name, args, env, cli: serverCli } of configs) {
      const home = mkdtempSync(join(tmpdir(), 'quoll-pgbench-home-'));
      const child = spawn(
        process.execPath,
        [serverCli ?? cli, 'server', '--home', home, '--port', '0', '--log-level', 'warn', ...args],
        { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } },
      );
      const url = (await waitFor(child, /listening on (http:\S+)/))[1] ?? '';
      const token = (JSON.parse(readFileSync(join(home, 'credentials.json'), 'utf8')) as { token: string })
        .token;
      const client = new Client({ url, token });
      const m = await (
        await client.uploadModel(`bench-${servers.length}`, model)
      ).configure({ tensorFields: ['tensor'] });
      const p = await client.buildPipeline(`bench-${servers.length}`);
      await p.addModelStep(m);
      await p.deploy();
      servers.push({ name, child, url: p.url(), home, token });
    }
    // The parts above store about 13 M rows (1.1 GB) in PostgreSQL, which its checkpoints
    // (requested by the WAL they wrote) and the kernel were still writing out during the
    // windows below, on the cores both servers share. Both start once it is written.
    const checkpointAt = performance.now();
    const admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
    try {
      await admin.query('CHECKPOINT');
    } finally {
      await admin.end();
    }
    results.checkpointBeforeInferMs = performance.now() - checkpointAt;
    const windows: Record<string, number[]> = {};
    const mean = (xs: number[]): number => xs.reduce((a, x) => a + x, 0) / xs.length;
    // Whether any server's last 3 windows average more than 5 % above its 3 before.
    const stillWarming = (): boolean =>
      servers.some((s) => {
        const w = windows[s.name] ?? [];
        return w.length >= 6 && mean(w.slice(-3)) > 1.05 * mean(w.slice(-6, -3));
      });
    let warmup = 0;
    let measured = 0;
    for (let r = 0; measured < INFER_ROUNDS; r++) {
      const warming = r < INFER_WARMUP_ROUNDS || (r < INFER_WARMUP_MAX && warmup === r && stillWarming());
      if (warming) warmup++;
      else measured++;
      // The order rotates round by round (embedded, node | node, embedded | … with two), so
      // that a machine getting busier or quieter across a round favours no server, and each
      // server runs right after its own previous window as often as the others.
      const order = servers.map((_, i) => servers[(i + r) % servers.length]!);
      for (const s of order) {
        const post = () =>
          fetch(s.url, {
            method: 'POST',
            headers: {
              authorization: `Bearer ${s.token}`,
              'content-type': 'application/vnd.apache.arrow.file',
              accept: 'application/vnd.apache.arrow.file',
            },
            body,
          }).then((res) => res.arrayBuffer());
        for (let i = 0; i < 20; i++) await post();
        const t = performance.now();
        let n = 0;
        while (performance.now() - t < 3_000) {
          await post();
          n++;
        }
        (windows[s.name] ??= []).push((n * 1000) / ((performance.now() - t) / 1000));
      }
    }
    results.inferWindows = { warmupRounds: warmup, rowsPerSec: windows };
    const emb = (windows.embedded ?? []).slice(warmup);
    const paired: Record<
      string,
      { ratios: number[]; median: number; q1: number; q3: number; ofMedians: number }
    > = {};
    for (const s of servers.slice(1)) {
      const w = (windows[s.name] ?? []).slice(warmup);
      const ratios = w.map((x, i) => x / (emb[i] ?? NaN));
      paired[s.name] = {
        ratios,
        median: median(ratios),
        q1: percentile(ratios, 25),
        q3: percentile(ratios, 75),
        ofMedians: median(w) / median(emb),
      };
    }
    results.inferPaired = paired;
    const embedded = median(emb);
    const node = median((windows['postgres node'] ?? []).slice(warmup));
    results.inferArrow1000 = {
      embeddedRowsPerSec: embedded,
      postgresNodeRowsPerSec: node,
      ratio: paired['postgres node']?.median ?? NaN,
      ratioOfMedians: node / embedded,
    };
    for (const s of servers.slice(1)) {
      const q = paired[s.name];
      rowsTable.push([
        s.name === 'postgres node' ? 'infer Arrow 1000, c=1 (rows/s)' : `infer Arrow 1000, c=1: ${s.name}`,
        Math.round(embedded),
        Math.round(median((windows[s.name] ?? []).slice(warmup))),
        q === undefined ? '' : `${q.median.toFixed(2)} (IQR ${q.q1.toFixed(2)}–${q.q3.toFixed(2)})`,
      ]);
    }
    for (const s of servers) {
      s.child.kill('SIGTERM');
      await new Promise((resolve) => s.child.once('exit', resolve));
      rmSync(s.home, { recursive: true, force: true });
    }
  }
} finally {
  await db.drop();
  await capDb?.drop();
  await capBaseDb?.drop();
  await baseDb?.drop();
}

printTable(['measure', 'embedded (SQLite)', 'PostgreSQL', 'PostgreSQL / embedded'], rowsTable);
const page = results.rangePage1000 as { rows: number; p50Ms: number; loadRowsPerSec: number } | undefined;
const newestPage = results.newestPage1000 as { p50Ms: number } | undefined;
if (page !== undefined && newestPage !== undefined)
  console.log(
    `\n${page.rows} rows loaded into PostgreSQL at ${Math.round(page.loadRowsPerSec)} rows/s; 1000-row pages on them: ` +
      `time range p50 ${page.p50Ms.toFixed(2)} ms, newest p50 ${newestPage.p50Ms.toFixed(2)} ms`,
  );
const inferWindows = results.inferWindows as
  { warmupRounds: number; rowsPerSec: Record<string, number[]> } | undefined;
if (inferWindows !== undefined)
  for (const [name, w] of Object.entries(inferWindows.rowsPerSec))
    console.log(
      `infer windows, ${name} (rows/s; the first ${inferWindows.warmupRounds} warm-up): ${w.map((x) => Math.round(x)).join(' ')}`,
    );
const inferPaired = results.inferPaired as
  Record<string, { ratios: number[]; median: number; ofMedians: number }> | undefined;
if (inferPaired !== undefined)
  for (const [name, q] of Object.entries(inferPaired))
    console.log(
      `infer ${name} / embedded by measured round: ${q.ratios.map((x) => x.toFixed(2)).join(' ')}; ` +
        `median ${q.median.toFixed(3)}, min ${Math.min(...q.ratios).toFixed(2)}, max ${Math.max(...q.ratios).toFixed(2)}; ` +
        `ratio of median windows ${q.ofMedians.toFixed(3)}`,
    );
if (typeof results.checkpointBeforeInferMs === 'number')
  console.log(`CHECKPOINT before the infer part took ${Math.round(results.checkpointBeforeInferMs)} ms`);
writeResults('postgres', results);
