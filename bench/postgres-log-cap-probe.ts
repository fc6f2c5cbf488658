// What a cluster node's log writer costs PostgreSQL (and itself) per stored batch once its
// pipeline is at its byte cap, split by phase: the write, the retention pass after it, and the
// vacuums its trims call for. Two writer builds side by side, each on a scratch database of its
// own prefilled to the cap, hand-offs interleaved round by round (the order alternating):
//   new   this checkout's `PostgresLogBatchWriter` (src),
//   base  another build's (CAP_PROBE_BASE=<its dist/store/postgres/postgres-log-batch-writer.js>).
// Each stores what the writer thread does per hand-off: `writeAlone` (the locked `write` when
// that declines), `enforceTotalRetention`, and `VACUUM_LOG_BATCHES` on a second connection,
// beside the writes, when `takeVacuumDue()` says so. Backend CPU from /proc/<pid>/schedstat of
// the database's backends (the vacuum's included), the writer's own CPU from /proc/thread-self.
// No server, no HTTP: the rows are 1000 rows of 18 floats (about 88 kB stored), as the bench's.
// CAP_PROBE_CAP (512 MiB), CAP_PROBE_HANDOFF (batches per hand-off, 12), CAP_PROBE_HANDOFFS
// (hand-offs per variant per round, 40), CAP_PROBE_ROUNDS (10; the first two are not counted).
// The base writer's database takes the migrations beside its build (its table layout). Give the
// base build this checkout's node_modules (a symlink): with a copy of its own, the base writer's
// backend spent 0.07 ms per batch and never trimmed (5 December, pgnode lane; by all signs it
// stored no real bytes, presumably two apache-arrow module instances, not examined).
// After the rounds it prints, per variant, the batches table's blocks read into PostgreSQL's
// shared buffers from outside them and found in them, per stored batch (`pg_statio_user_tables`).
// Run: CAP_PROBE_BASE=… flock /tmp/quoll-bench.lock node --import tsx bench/postgres-log-cap-probe.ts
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { RecordBatch } from 'apache-arrow';
import pg from 'pg';
import { inferenceLogRows } from '../packages/quoll/src/store/conformance/inference-log-rows.js';
import { PostgresDatabase } from '../packages/quoll/src/store/postgres/postgres-database.js';
import * as current from '../packages/quoll/src/store/postgres/postgres-log-batch-writer.js';
import { median } from './support.js';

type WriterModule = typeof current;
const CAP = Number(process.env.CAP_PROBE_CAP ?? 512 * 1024 * 1024);
const HANDOFF = Number(process.env.CAP_PROBE_HANDOFF ?? 12);
const HANDOFFS = Number(process.env.CAP_PROBE_HANDOFFS ?? 40);
const ROUNDS = Number(process.env.CAP_PROBE_ROUNDS ?? 10);
const WARM = 2;
const PG_URL = process.env.QUOLL_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

const variants: { name: string; mod: WriterModule }[] = [{ name: 'new', mod: current }];
/** The base build's PostgreSQL migrations, beside its dist (`<package>/migrations/postgres/`), if there. */
function baseMigrations(): string | undefined {
  const base = process.env.CAP_PROBE_BASE;
  if (!base) return undefined;
  const dir = fileURLToPath(new URL('../../../migrations/postgres/', pathToFileURL(base)));
  return existsSync(dir) ? dir : undefined;
}
if (process.env.CAP_PROBE_BASE) {
  variants.push({ name: 'base', mod: (await import(process.env.CAP_PROBE_BASE)) as WriterModule });
}

const T0 = 1_700_000_000_000;
let nextId = 0;
function batch(): RecordBatch {
  const ids = Array.from({ length: 1000 }, (_, i) => nextId + i);
  nextId += 1000;
  return inferenceLogRows(
    ids,
    ids.map((i) => T0 + i),
    { width: 18 },
  );
}
const cpuNs = (path: string): number => Number(readFileSync(path, 'utf8').split(' ')[0]);
const selfNs = (): number => cpuNs('/proc/thread-self/schedstat');

const root = new pg.Client({ connectionString: PG_URL });
await root.connect();
interface Run {
  name: string;
  mod: WriterModule;
  db: PostgresDatabase;
  dbName: string;
  writer: InstanceType<WriterModule['PostgresLogBatchWriter']>;
  vacuuming: Promise<void> | null;
  /** The backend running the vacuum (left out of the write and retention figures). */
  vacuumPid: number | null;
  vacuums: number;
  /** Per counted round: ms per stored batch. */
  write: number[];
  retention: number[];
  backendAll: number[];
  client: number[];
  xact: number[];
}
const runs: Run[] = [];
async function backendNs(dbName: string, leaveOut: number | null = null): Promise<number> {
  const r = await root.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = $1', [
    dbName,
  ]);
  let sum = 0;
  for (const { pid } of r.rows) {
    if (pid === leaveOut) continue;
    try {
      sum += cpuNs(`/proc/${pid}/schedstat`);
    } catch {
      // ended
    }
  }
  return sum;
}
async function xacts(dbName: string): Promise<number> {
  await root.query('SELECT pg_stat_force_next_flush()').catch(() => undefined);
  const r = await root.query<{ n: string }>(
    'SELECT xact_commit + xact_rollback AS n FROM pg_stat_database WHERE datname = $1',
    [dbName],
  );
  return Number(r.rows[0]?.n ?? 0);
}
/**
 * The batches table's blocks read into shared buffers from outside them, and found in them
 * (`pg_statio_user_tables`: heap, hit, TOAST, hit, TOAST index, hit), as counted so far.
 */
async function blockReads(run: Run): Promise<number[]> {
  // Statistics reach the shared counters when a backend is idle a moment.
  await new Promise((resolve) => setTimeout(resolve, 1100));
  const row = await run.db.one<Record<string, string | null>>(
    `SELECT heap_blks_read, heap_blks_hit, toast_blks_read, toast_blks_hit, tidx_blks_read, tidx_blks_hit
       FROM pg_statio_user_tables WHERE relname = 'inference_log_batches'`,
  );
  return [
    'heap_blks_read',
    'heap_blks_hit',
    'toast_blks_read',
    'toast_blks_hit',
    'tidx_blks_read',
    'tidx_blks_hit',
  ].map((k) => Number(row?.[k] ?? 0));
}
/** One hand-off as the writer thread stores it. */
async function handOff(
  run: Run,
  pipelineId: number,
  batches: RecordBatch[],
): Promise<{ w: number; r: number }> {
  // A vacuum that starts or ends between two readings would count in them: its backend is left
  // out of both readings of a phase (the pid read before the phase).
  const v = run.vacuumPid;
  const b0 = await backendNs(run.dbName, v);
  if (!(await run.writer.writeAlone(run.db, pipelineId, batches))) {
    run.writer.committed(await run.db.transaction((sql) => run.writer.write(sql, pipelineId, batches)));
  }
  const b1 = await backendNs(run.dbName, v);
  const v2 = run.vacuumPid;
  const b1b = await backendNs(run.dbName, v2);
  await run.writer.enforceTotalRetention(run.db, (fn) => run.db.transaction(fn));
  const b2 = await backendNs(run.dbName, v2);
  if (run.vacuuming === null && run.writer.takeVacuumDue()) {
    run.vacuums++;
    run.vacuuming = vacuum(run);
  }
  return { w: b1 - b0, r: b2 - b1b };
}
/** The vacuum on a pool client of its own, as the writer thread runs it. */
async function vacuum(run: Run): Promise<void> {
  const client = await run.db.pool.connect();
  try {
    run.vacuumPid = (client as unknown as { processID?: number }).processID ?? null;
    await client.query(run.mod.VACUUM_LOG_BATCHES);
  } finally {
    run.vacuumPid = null;
    run.vacuuming = null;
    client.release();
  }
}
try {
  for (const v of variants) {
    const dbName = `quoll_cap_probe_${process.pid}_${v.name}`;
    await root.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    await root.query(`CREATE DATABASE ${dbName}`);
    const url = new URL(PG_URL);
    url.pathname = `/${dbName}`;
    // Each build on its own migrations (the base build's writer on the table layout it knows).
    const migrations = v.name === 'base' ? baseMigrations() : undefined;
    const db = await PostgresDatabase.open({
      url: url.toString(),
      poolSize: 2,
      ...(migrations === undefined ? {} : { migrationsDirectory: migrations }),
    });
    const caps = { maxBytesPerPipeline: CAP, maxBytesTotal: 1e15 };
    runs.push({
      name: v.name,
      mod: v.mod,
      db,
      dbName,
      writer: new v.mod.PostgresLogBatchWriter(`probe-${v.name}`, caps),
      vacuuming: null,
      vacuumPid: null,
      vacuums: 0,
      write: [],
      retention: [],
      backendAll: [],
      client: [],
      xact: [],
    });
  }
  // Prefill each to its cap (a writer without caps), then checkpoint: both start at the cap.
  const one = 88_000;
  for (const run of runs) {
    const fill = new run.mod.PostgresLogBatchWriter('fill', {
      maxBytesPerPipeline: 1e15,
      maxBytesTotal: 1e15,
    });
    fill.committed(await run.db.transaction((sql) => fill.write(sql, 1, [batch()])));
    for (let k = 1; k < CAP / one; k += HANDOFF) {
      await fill.writeAlone(
        run.db,
        1,
        Array.from({ length: HANDOFF }, () => batch()),
      );
    }
  }
  await root.query('CHECKPOINT');
  console.log(`prefilled ${runs.length} logs to a ${CAP} byte cap; ${HANDOFF} batches per hand-off`);
  const io0 = new Map<Run, number[]>();
  for (const run of runs) io0.set(run, await blockReads(run));
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? runs : [...runs].reverse();
    for (const run of order) {
      const batches = Array.from({ length: HANDOFFS }, () => Array.from({ length: HANDOFF }, () => batch()));
      const x0 = await xacts(run.dbName);
      const all0 = await backendNs(run.dbName);
      const c0 = selfNs();
      let w = 0;
      let r = 0;
      for (const b of batches) {
        const t = await handOff(run, 1, b);
        w += t.w;
        r += t.r;
      }
      // A vacuum still running counts in this window.
      await run.vacuuming;
      const c1 = selfNs();
      const all1 = await backendNs(run.dbName);
      const x1 = await xacts(run.dbName);
      const n = HANDOFFS * HANDOFF;
      if (round < WARM) continue;
      run.write.push(w / 1e6 / n);
      run.retention.push(r / 1e6 / n);
      run.backendAll.push((all1 - all0) / 1e6 / n);
      run.client.push((c1 - c0) / 1e6 / n);
      run.xact.push((x1 - x0) / HANDOFFS);
    }
  }
  for (const run of runs) {
    const io = (await blockReads(run)).map((x, i) => x - (io0.get(run)?.[i] ?? 0));
    const stored = run.write.length * HANDOFFS * HANDOFF;
    console.log(
      `${run.name.padEnd(5)} shared-buffer blocks per stored batch, counted rounds (PostgreSQL's statistics: read from outside shared buffers / hit): ` +
        `TOAST heap ${(io[2]! / stored).toFixed(1)} / ${(io[3]! / stored).toFixed(1)}, TOAST index ${(io[4]! / stored).toFixed(1)} / ${(io[5]! / stored).toFixed(1)}, table ${(io[0]! / stored).toFixed(1)} / ${(io[1]! / stored).toFixed(1)}`,
    );
  }
  for (const run of runs) {
    const f = (xs: number[]): string => `${median(xs).toFixed(3)} (${xs.map((x) => x.toFixed(2)).join(' ')})`;
    console.log(
      `${run.name.padEnd(5)} ms per stored batch, medians of ${ROUNDS - WARM} rounds: backend write ${f(run.write)} | backend retention ${f(run.retention)} | backend all (vacuums too) ${f(run.backendAll)} | writer process thread ${f(run.client)} | xact per hand-off ${median(run.xact).toFixed(2)} | vacuums ${run.vacuums}`,
    );
  }
} finally {
  for (const run of runs) {
    await run.vacuuming?.catch(() => undefined);
    await run.db.close();
    await root.query(`DROP DATABASE IF EXISTS ${run.dbName} WITH (FORCE)`);
  }
  await root.end();
}
