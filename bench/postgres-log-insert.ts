// What PostgreSQL's backend (and the client) spend storing inference-log batches as a node's
// writer does today (`BEGIN`, one multi-row `INSERT` of INSERT_PER_TX 88 kB `bytea` values,
// unnamed statement, `COMMIT`), against variants of the same statements, interleaved
// transaction by transaction (the order rotating) so that all see the same machine:
//   today2  the same again (A/A),
//   named   a named (prepared) statement,
//   async   `SET LOCAL synchronous_commit = off`,
//   single  one named single-row `INSERT` per batch, queued back to back,
//   merged  the transaction's batches as one value (fewer, larger values).
// Each variant has a table of its own (migration 0013's columns, indexes and `STORAGE
// EXTERNAL`). Backend CPU from /proc/<pid>/schedstat, the client's from /proc/thread-self.
// No Quoll code: one `pg` client, random bytes. Creates and drops `pg_insert_<pid>`.
// INSERT_BATCHES (900), INSERT_PER_TX (3), INSERT_VARIANTS (all, comma-separated).
// Run: flock /tmp/quoll-bench.lock node --import tsx bench/postgres-log-insert.ts
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { scratchPgDatabase } from './support.js';

const N = Number(process.env.INSERT_BATCHES ?? 900);
const PER = Number(process.env.INSERT_PER_TX ?? 3);
const SIZE = 88_000;
const VARIANTS = (process.env.INSERT_VARIANTS ?? 'today,today2,named,async,single,merged').split(',');
const scratch = await scratchPgDatabase(`pg_insert_${process.pid}`);
const c = scratch.client;
const pid = scratch.backendPid;
try {
  const cpuNs = (path: string): number => Number(readFileSync(path, 'utf8').split(' ')[0]);
  for (const v of VARIANTS)
    await c.query(`
      CREATE TABLE t_${v} (pipeline_id INTEGER NOT NULL, seq BIGINT NOT NULL, schema_id TEXT COLLATE "C" NOT NULL,
        rows INTEGER NOT NULL, bytes INTEGER NOT NULL, min_time BIGINT NOT NULL, max_time BIGINT NOT NULL,
        node_id TEXT NOT NULL, created_at BIGINT NOT NULL, data BYTEA NOT NULL, PRIMARY KEY (pipeline_id, seq));
      ALTER TABLE t_${v} ALTER COLUMN data SET STORAGE EXTERNAL;
      CREATE INDEX ON t_${v} (pipeline_id, max_time, seq); CREATE INDEX ON t_${v} (pipeline_id, min_time, seq);
      CREATE INDEX ON t_${v} (created_at);`);
  const values = Array.from({ length: 16 }, () => randomBytes(SIZE));
  const tuple = (first: number): string =>
    `(${Array.from({ length: 10 }, (_, i) => `$${first + i + 1}`).join(', ')})`;
  const row = (seq: number, data: Buffer): unknown[] => [
    1,
    seq,
    's',
    1000,
    data.length,
    seq,
    seq,
    'n',
    Date.now(),
    data,
  ];

  /** One transaction storing PER batches from `seq` in variant `v`'s way. */
  const store = async (v: string, seq: number): Promise<void> => {
    const batches = Array.from({ length: PER }, (_, k) => values[(seq + k) % values.length] as Buffer);
    await c.query(v === 'async' ? 'BEGIN; SET LOCAL synchronous_commit = off' : 'BEGIN');
    if (v === 'single') {
      const text = `INSERT INTO t_${v} VALUES ${tuple(0)}`;
      await Promise.all(batches.map((b, k) => c.query({ name: `one_${v}`, text, values: row(seq + k, b) })));
    } else {
      const rows =
        v === 'merged' ? [row(seq, Buffer.concat(batches))] : batches.map((b, k) => row(seq + k, b));
      const text = `INSERT INTO t_${v} VALUES ${rows.map((_, k) => tuple(k * 10)).join(', ')}`;
      const query = { text, values: rows.flat() };
      await c.query(v === 'named' ? { ...query, name: `ins_${v}_${rows.length}` } : query);
    }
    await c.query('COMMIT');
  };
  const backend: Record<string, number> = {};
  const client: Record<string, number> = {};
  const wall: Record<string, number> = {};
  for (let seq = 0, turn = 0; seq < N; seq += PER, turn++) {
    const r = turn % VARIANTS.length;
    for (const v of [...VARIANTS.slice(r), ...VARIANTS.slice(0, r)]) {
      const b0 = cpuNs(`/proc/${pid}/schedstat`);
      const c0 = cpuNs('/proc/thread-self/schedstat');
      const t0 = performance.now();
      await store(v, seq);
      wall[v] = (wall[v] ?? 0) + performance.now() - t0;
      client[v] = (client[v] ?? 0) + cpuNs('/proc/thread-self/schedstat') - c0;
      backend[v] = (backend[v] ?? 0) + cpuNs(`/proc/${pid}/schedstat`) - b0;
    }
  }
  for (const v of VARIANTS)
    console.log(
      `${v.padEnd(7)} per batch: backend CPU ${((backend[v] ?? 0) / 1e6 / N).toFixed(3)} ms, ` +
        `client CPU ${((client[v] ?? 0) / 1e6 / N).toFixed(3)} ms, wall ${((wall[v] ?? 0) / N).toFixed(3)} ms`,
    );
} finally {
  await scratch.drop();
}
