// What storing one inference-log batch costs, process and PostgreSQL backend together, by how
// the batch's bytes are stored: as they are (today: one `bytea`, `STORAGE EXTERNAL`, about 44
// TOAST rows of 2 kB for 88 kB), compressed in the process first (brotli quality 0 or 1,
// deflate level 1: node:zlib, no new dependency), or as plain chunk rows of CODEC_CHUNK bytes
// (no TOAST). Every variant has its own table and the variants alternate transaction by
// transaction (CODEC_PER_TX batches each), so all see the same machine. CPU is read in
// nanoseconds: the backend's from /proc/<pid>/schedstat, the process's (the compression) from
// process.cpuUsage(); WAL bytes from pg_current_wal_lsn(). Then, per variant: reading two
// consecutive batches by seq (backend + decompression), and the retention path (deleting the
// oldest half of the batches, then VACUUM), per batch deleted.
// The batches: CODEC_SAMPLES (a directory of `batch-*.bin`, Arrow record-batch messages of a
// real log, e.g. from a node's inference_log_batches.data) or, without it, synthetic 88 352-byte
// messages laid out as the bench's (a constant int64 time column, 1000 × 18 float32 house
// features from makeHouseRows, 1000 float32 outputs, 1000 zero uint32 check failures).
// CODEC_BATCHES (600 per variant), CODEC_PER_TX (6: a node stored about 5–6 requests per
// transaction in bench/postgres-probe.ts), CODEC_VARIANTS (raw,brotli0; also brotli1, deflate1,
// chunked). The inserts are named statements, as the node's writer's: with unnamed ones (this
// script's first version) the backend planned each insert with its bytes folded in as
// constants and copied them (a quarter of its perf samples), which tripled raw's backend CPU
// per batch (1.85–2.63 ms against 0.79–0.80) and made compression look like a gain of 0.5–1.3 ms
// per batch that the server did not show (docs/benchmarks.md, pgnode lane of 5 December).
// Confirm any gain in the server (bench/postgres-probe.ts).
// Run: flock /tmp/quoll-bench.lock timeout 330 node --import tsx bench/postgres-log-codec.ts
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  brotliCompressSync,
  brotliDecompressSync,
  constants,
  deflateRawSync,
  inflateRawSync,
} from 'node:zlib';
import { makeHouseRows } from '../test/support/synthetic-data.js';
import { loadAverage, median, scratchPgDatabase } from './support.js';
import { LOG_BATCH_META_COLUMNS, logBatchIndexes } from './postgres-log-batch-table.js';

const mean = (xs: readonly number[]): number => xs.reduce((sum, x) => sum + x, 0) / xs.length;

const N = Number(process.env.CODEC_BATCHES ?? 600);
const PER = Number(process.env.CODEC_PER_TX ?? 6);
const CHUNK = Number(process.env.CODEC_CHUNK ?? 8000);
const VARIANTS = (process.env.CODEC_VARIANTS ?? 'raw,brotli0').split(',');

function samples(): Buffer[] {
  const dir = process.env.CODEC_SAMPLES;
  if (dir !== undefined)
    return readdirSync(dir)
      .filter((f) => /^batch-.*\.bin$/.test(f))
      .map((f) => readFileSync(join(dir, f)));
  return Array.from({ length: 8 }, (_, s) => {
    const time = Buffer.alloc(8000);
    for (let i = 0; i < 1000; i++) time.writeBigInt64LE(1_796_430_915_608n + BigInt(s), i * 8);
    const out = new Float32Array(1000).map(
      (_, i) => 1_000_000 + Math.round(((i * 7919 + s) % 1000) * 997.5) / 2,
    );
    return Buffer.concat([
      Buffer.alloc(352, 1),
      time,
      Buffer.from(makeHouseRows(1000, s + 1).buffer),
      Buffer.from(out.buffer),
      Buffer.alloc(4000),
    ]);
  });
}

const brotli = (q: number) => (b: Buffer) =>
  brotliCompressSync(b, {
    params: { [constants.BROTLI_PARAM_QUALITY]: q, [constants.BROTLI_PARAM_SIZE_HINT]: b.length },
  });
const codecs: Record<string, { compress: (b: Buffer) => Buffer; decompress: (b: Buffer) => Buffer }> = {
  raw: { compress: (b) => b, decompress: (b) => b },
  brotli0: { compress: brotli(0), decompress: (b) => brotliDecompressSync(b) },
  brotli1: { compress: brotli(1), decompress: (b) => brotliDecompressSync(b) },
  deflate1: { compress: (b) => deflateRawSync(b, { level: 1 }), decompress: (b) => inflateRawSync(b) },
  chunked: { compress: (b) => b, decompress: (b) => b },
};

const values = samples();
const scratch = await scratchPgDatabase(`pgnode_codec_${process.pid}`);
const c = scratch.client;
const pid = scratch.backendPid;
/** ns the backend has run on a CPU. */
const backendNs = (): number => Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[0]);
const processNs = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) * 1000;
};
const walBytes = async (): Promise<number> =>
  Number(
    (await c.query<{ b: string }>(`SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::text AS b`)).rows[0]
      ?.b,
  );
const meta = LOG_BATCH_META_COLUMNS;
const indexes = logBatchIndexes;
const params = (n: number, first: number): string =>
  `(${Array.from({ length: n }, (_, i) => `$${first + i + 1}`).join(', ')})`;
const metaValues = (seq: number, bytes: number): unknown[] => [
  1,
  seq,
  's',
  1000,
  bytes,
  seq,
  seq,
  'node',
  Date.now(),
];
console.log(
  `load ${loadAverage().toFixed(2)} at start; ${values.length} sample batches of ${values[0]?.length} bytes`,
);
try {
  for (const v of VARIANTS) {
    if (v === 'chunked')
      await c.query(`CREATE TABLE t_${v} (${meta}, PRIMARY KEY (pipeline_id, seq)); ${indexes(`t_${v}`)}
        CREATE TABLE t_${v}_chunks (pipeline_id INTEGER NOT NULL, seq BIGINT NOT NULL, part INTEGER NOT NULL,
          data BYTEA NOT NULL, PRIMARY KEY (pipeline_id, seq, part));
        ALTER TABLE t_${v}_chunks ALTER COLUMN data SET STORAGE PLAIN;`);
    else
      await c.query(`CREATE TABLE t_${v} (${meta}, data BYTEA NOT NULL, PRIMARY KEY (pipeline_id, seq));
        ALTER TABLE t_${v} ALTER COLUMN data SET STORAGE EXTERNAL; ${indexes(`t_${v}`)}`);
  }
  const store = async (v: string, seq: number): Promise<{ proc: number; stored: number }> => {
    const p0 = processNs();
    const tuples: string[] = [];
    const vals: unknown[] = [];
    const chunkTuples: string[] = [];
    const chunkVals: unknown[] = [];
    let stored = 0;
    for (let k = 0; k < PER; k++) {
      const raw = values[(seq + k) % values.length]!;
      const data = codecs[v]!.compress(raw);
      stored += data.length;
      if (v === 'chunked') {
        tuples.push(params(9, vals.length));
        vals.push(...metaValues(seq + k, raw.length));
        for (let at = 0, part = 0; at < data.length; at += CHUNK, part++) {
          chunkTuples.push(params(4, chunkVals.length));
          chunkVals.push(1, seq + k, part, data.subarray(at, at + CHUNK));
        }
      } else {
        tuples.push(params(10, vals.length));
        vals.push(...metaValues(seq + k, raw.length), data);
      }
    }
    const proc = processNs() - p0;
    await c.query('BEGIN');
    // Named (prepared) statements, as the node's writer uses: an unnamed one is planned at each
    // execution with its byte parameters folded in as constants, which the planner copies (a
    // quarter of the backend's samples under perf, most of the page faults), a cost the node's
    // backend mostly does not have (4 % of its samples).
    await c.query({
      name: `ins_${v}_${PER}`,
      text: `INSERT INTO t_${v} VALUES ${tuples.join(', ')}`,
      values: vals,
    });
    if (v === 'chunked')
      await c.query({
        name: `ins_${v}_chunks_${chunkTuples.length}`,
        text: `INSERT INTO t_${v}_chunks VALUES ${chunkTuples.join(', ')}`,
        values: chunkVals,
      });
    await c.query('COMMIT');
    return { proc, stored };
  };
  const acc = Object.fromEntries(
    VARIANTS.map((v) => [v, { backend: [] as number[], proc: [] as number[], wal: 0, stored: 0 }]),
  );
  for (let seq = 0; seq < N; seq += PER) {
    // The order rotates transaction by transaction.
    for (let i = 0; i < VARIANTS.length; i++) {
      const v = VARIANTS[(i + seq / PER) % VARIANTS.length]!;
      const b0 = backendNs();
      const w0 = await walBytes();
      const { proc, stored } = await store(v, seq);
      const a = acc[v]!;
      a.backend.push((backendNs() - b0) / PER);
      a.proc.push(proc / PER);
      a.wal += (await walBytes()) - w0;
      a.stored += stored;
    }
  }
  const reads = Object.fromEntries(VARIANTS.map((v) => [v, { backend: 0, proc: 0 }]));
  for (let i = 0; i < 200; i++) {
    const seq = Math.floor(Math.random() * (N - 2));
    for (const v of VARIANTS) {
      const b0 = backendNs();
      const q =
        v === 'chunked'
          ? await c.query<{ data: Buffer }>(
              `SELECT data FROM t_${v}_chunks WHERE pipeline_id = 1 AND seq BETWEEN $1 AND $2 ORDER BY seq, part`,
              [seq, seq + 1],
            )
          : await c.query<{ data: Buffer }>(
              `SELECT data FROM t_${v} WHERE pipeline_id = 1 AND seq BETWEEN $1 AND $2`,
              [seq, seq + 1],
            );
      reads[v]!.backend += backendNs() - b0;
      const p0 = processNs();
      if (v !== 'chunked') for (const r of q.rows) codecs[v]!.decompress(r.data);
      reads[v]!.proc += processNs() - p0;
    }
  }
  const trims = Object.fromEntries(VARIANTS.map((v) => [v, { del: 0, vacuum: 0, wal: 0 }]));
  for (const v of VARIANTS) {
    const b0 = backendNs();
    const w0 = await walBytes();
    await c.query(`DELETE FROM t_${v} WHERE pipeline_id = 1 AND seq < $1`, [N / 2]);
    if (v === 'chunked')
      await c.query(`DELETE FROM t_${v}_chunks WHERE pipeline_id = 1 AND seq < $1`, [N / 2]);
    const b1 = backendNs();
    await c.query(`VACUUM (TRUNCATE false) t_${v}`);
    if (v === 'chunked') await c.query(`VACUUM (TRUNCATE false) t_${v}_chunks`);
    trims[v] = {
      del: (b1 - b0) / (N / 2),
      vacuum: (backendNs() - b1) / (N / 2),
      wal: ((await walBytes()) - w0) / (N / 2),
    };
  }
  const ms = (ns: number): string => (ns / 1e6).toFixed(3);
  console.log(
    'variant | stored kB/batch | WAL kB/batch | backend ms/batch (mean; median of tx) | process ms/batch | total | read 2: backend + process ms | delete + vacuum backend ms/batch | trim WAL kB/batch',
  );
  for (const v of VARIANTS) {
    const a = acc[v]!;
    // Means, not medians: the backend's costs come in bursts (a transaction that extends the
    // table or writes out dirty buffers costs several times one that does not).
    const b = mean(a.backend);
    const p = mean(a.proc);
    console.log(
      [
        v,
        (a.stored / N / 1024).toFixed(1),
        (a.wal / N / 1024).toFixed(1),
        `${ms(b)} (${ms(median(a.backend))})`,
        ms(p),
        ms(b + p),
        `${ms(reads[v]!.backend / 200)} + ${ms(reads[v]!.proc / 200)}`,
        `${ms(trims[v]!.del)} + ${ms(trims[v]!.vacuum)}`,
        (trims[v]!.wal / 1024).toFixed(1),
      ].join(' | '),
    );
  }
  console.log(`load ${loadAverage().toFixed(2)} at end`);
} finally {
  await scratch.drop();
}
