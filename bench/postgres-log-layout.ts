// What PostgreSQL's backend spends storing one inference-log batch, in two table layouts,
// interleaved transaction by transaction so that both see the same machine: today's (one
// `bytea` per batch, `STORAGE EXTERNAL`: about 45 TOAST rows of 2 kB for 88 kB) and a chunked
// one (a metadata row, plus the bytes in rows of at most LAYOUT_CHUNK bytes, `STORAGE PLAIN`,
// no TOAST). Backend CPU from /proc/<backend pid> (Linux, PostgreSQL on this machine), WAL
// bytes from pg_current_wal_lsn(); then the read of two consecutive batches by seq in each.
// No Quoll code: one `pg` client, random bytes. Creates and drops `pglayout_layout_<pid>`.
// LAYOUT_BATCHES (600), LAYOUT_PER_TX (3), LAYOUT_BYTES (88 000), LAYOUT_CHUNK (8000).
// Run: flock /tmp/quoll-bench.lock node --import tsx bench/postgres-log-layout.ts
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { scratchPgDatabase } from './support.js';
import { LOG_BATCH_META_COLUMNS, logBatchIndexes } from './postgres-log-batch-table.js';

const N = Number(process.env.LAYOUT_BATCHES ?? 600);
const PER = Number(process.env.LAYOUT_PER_TX ?? 3);
const SIZE = Number(process.env.LAYOUT_BYTES ?? 88_000);
const CHUNK = Number(process.env.LAYOUT_CHUNK ?? 8000);
const scratch = await scratchPgDatabase(`pglayout_layout_${process.pid}`);
const c = scratch.client;
const pid = scratch.backendPid;
try {
  /** CPU seconds of the backend (user + system, clock ticks of 10 ms). */
  const backendCpu = (): number => {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  };
  const walBytes = async (): Promise<number> =>
    Number(
      (await c.query<{ b: string }>(`SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::text AS b`)).rows[0]
        ?.b ?? 0,
    );
  const meta = LOG_BATCH_META_COLUMNS;
  const indexes = logBatchIndexes;
  await c.query(`
    CREATE TABLE toasted (${meta}, data BYTEA NOT NULL, PRIMARY KEY (pipeline_id, seq));
    ALTER TABLE toasted ALTER COLUMN data SET STORAGE EXTERNAL; ${indexes('toasted')}
    CREATE TABLE batches (${meta}, PRIMARY KEY (pipeline_id, seq)); ${indexes('batches')}
    CREATE TABLE chunks (pipeline_id INTEGER NOT NULL, seq BIGINT NOT NULL, part INTEGER NOT NULL,
      data BYTEA NOT NULL, PRIMARY KEY (pipeline_id, seq, part));
    ALTER TABLE chunks ALTER COLUMN data SET STORAGE PLAIN;`);
  const values = Array.from({ length: 16 }, () => randomBytes(SIZE));
  const params = (n: number, first: number): string =>
    `(${Array.from({ length: n }, (_, i) => `$${first + i + 1}`).join(', ')})`;
  const metaValues = (seq: number): unknown[] => [1, seq, 's', 1000, SIZE, seq, seq, 'node', Date.now()];

  /** One transaction storing PER batches: one multi-row INSERT, as the writer does today. */
  const storeToasted = async (seq: number): Promise<void> => {
    const tuples: string[] = [];
    const vals: unknown[] = [];
    for (let k = 0; k < PER; k++) {
      tuples.push(params(10, vals.length));
      vals.push(...metaValues(seq + k), values[(seq + k) % values.length]);
    }
    await c.query('BEGIN');
    await c.query(`INSERT INTO toasted VALUES ${tuples.join(', ')}`, vals);
    await c.query('COMMIT');
  };
  /** The same batches as metadata rows and plain chunk rows (two multi-row INSERTs). */
  const storeChunked = async (seq: number): Promise<void> => {
    const metaTuples: string[] = [];
    const metaVals: unknown[] = [];
    const chunkTuples: string[] = [];
    const chunkVals: unknown[] = [];
    for (let k = 0; k < PER; k++) {
      metaTuples.push(params(9, metaVals.length));
      metaVals.push(...metaValues(seq + k));
      const v = values[(seq + k) % values.length] as Buffer;
      for (let at = 0, part = 0; at < v.length; at += CHUNK, part++) {
        chunkTuples.push(params(4, chunkVals.length));
        chunkVals.push(1, seq + k, part, v.subarray(at, at + CHUNK));
      }
    }
    await c.query('BEGIN');
    await c.query(`INSERT INTO batches VALUES ${metaTuples.join(', ')}`, metaVals);
    await c.query(`INSERT INTO chunks VALUES ${chunkTuples.join(', ')}`, chunkVals);
    await c.query('COMMIT');
  };
  const layouts = { toasted: storeToasted, chunked: storeChunked };
  const cpu = { toasted: 0, chunked: 0 };
  const wal = { toasted: 0, chunked: 0 };
  for (let seq = 0; seq < N; seq += PER) {
    for (const [layout, store] of Object.entries(layouts) as [keyof typeof layouts, typeof storeToasted][]) {
      const c0 = backendCpu();
      const w0 = await walBytes();
      await store(seq);
      cpu[layout] += backendCpu() - c0;
      wal[layout] += (await walBytes()) - w0;
    }
  }
  for (const layout of Object.keys(layouts) as (keyof typeof layouts)[])
    console.log(
      `store ${layout.padEnd(8)} backend CPU ${((cpu[layout] * 1000) / N).toFixed(2)} ms/batch, WAL ${(wal[layout] / N / 1024).toFixed(1)} kB/batch`,
    );
  const reads = { toasted: 0, chunked: 0 };
  for (let i = 0; i < 300; i++) {
    const seq = Math.floor(Math.random() * (N - 2));
    let c0 = backendCpu();
    await c.query('SELECT seq, data FROM toasted WHERE pipeline_id = 1 AND seq BETWEEN $1 AND $2', [
      seq,
      seq + 1,
    ]);
    reads.toasted += backendCpu() - c0;
    c0 = backendCpu();
    await c.query(
      'SELECT seq, data FROM chunks WHERE pipeline_id = 1 AND seq BETWEEN $1 AND $2 ORDER BY seq, part',
      [seq, seq + 1],
    );
    reads.chunked += backendCpu() - c0;
  }
  for (const layout of Object.keys(reads) as (keyof typeof reads)[])
    console.log(
      `read two batches, ${layout.padEnd(8)} backend CPU ${((reads[layout] * 1000) / 300).toFixed(2)} ms`,
    );
} finally {
  await scratch.drop();
}
