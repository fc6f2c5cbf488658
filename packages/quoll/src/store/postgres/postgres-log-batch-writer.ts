import type { RecordBatch } from 'apache-arrow';
import {
  ArrowMessageEncoder,
  clampLogTime,
  coalesceLogBatches,
  COALESCE_BELOW_ROWS,
  COALESCE_MAX_BYTES,
  COALESCE_MAX_ROWS,
  rowStep,
  schemaIdOf,
  timeValues,
} from '../../logs/index.js';
import { BoundMessageBuffer, PostgresBoundStatement, type BoundValue } from './postgres-bound-statement.js';
import { PG_QUERY_CANCELED, sqlState, type Sql } from './postgres-database.js';

/** Most rows of one stored batch (small input batches are merged up to it). */
export const STORED_BATCH_MAX_ROWS = 1024;
/** Most column bytes of one stored batch. */
export const STORED_BATCH_MAX_BYTES = 1024 * 1024;
/** Most stored batches one `INSERT` carries (10 parameters each). */
const INSERT_MAX_BATCHES = 64;
/** Most batch bytes one `INSERT` carries. */
const INSERT_MAX_BYTES = 16 * 1024 * 1024;
/**
 * Batch bytes this writer's retention deletes between two `VACUUM`s of the batches table: a
 * quarter of the cap (the smaller of the per-pipeline and total caps), within 1–64 MiB.
 * Deleted batches leave dead TOAST chunks that only a vacuum makes reusable; until one runs, every write extends the table by new
 * pages (PostgreSQL writes each one zeroed first, about half its CPU per stored batch), and a
 * log at its cap grows on disk without end when autovacuum is off or behind.
 */
export function vacuumAfterTrimmedBytes(capBytes: number): number {
  return Math.min(64 * 1024 * 1024, Math.max(1024 * 1024, Math.floor(capBytes / 4)));
}
/**
 * Makes the space of trimmed batches reusable. Outside any transaction. `SKIP_LOCKED`: another
 * node vacuuming the table does the same work, so this one does not wait for it; `TRUNCATE
 * false`: a log at its cap refills the freed pages, so the end of the table is not cut off
 * (which would take a lock that stops every node's inserts for a moment). The TOAST table is
 * vacuumed with it (`PROCESS_TOAST` is the default).
 */
export const VACUUM_LOG_BATCHES = 'VACUUM (SKIP_LOCKED, TRUNCATE false) inference_log_batches';
/**
 * How far below its byte cap a trim takes a pipeline that passed it: a 32nd of the cap, at most
 * 32 MiB. A log at its cap is then trimmed once per step of writes (at the 1 GiB default, about
 * 380 stored batches of 88 kB), not after every hand-off: each trim is a transaction of its own
 * (seven statements and a commit), which at every hand-off cost a node more than the embedded
 * store's retention (a whole 64 MiB segment file deleted at a time). The cap stays a bound: a
 * pipeline never keeps more than its cap, and at least its cap less this step once it reached it.
 */
export function trimStepBytes(capBytes: number): number {
  return Math.min(32 * 1024 * 1024, Math.floor(capBytes / 32));
}
/**
 * How many of a pipeline's seqs one partition of the batches table holds (migration 0017): as
 * many batches, as large as the ones being written, as make an eighth of the pipeline's cap, and
 * at least {@link PARTITION_MIN_SEQS}. A pipeline at its cap so has about nine partitions, and a
 * trim drops the oldest, an eighth of the cap, at a time.
 */
export function partitionSeqs(capBytes: number, batchBytes: number): number {
  const seqs = Math.ceil(capBytes / 8 / Math.max(1, batchBytes));
  return Math.min(PARTITION_MAX_SEQS, Math.max(PARTITION_MIN_SEQS, seqs));
}
const PARTITION_MIN_SEQS = 16;
/**
 * Bounds the seqs of one partition (about a million): a partition never holds a log's whole
 * future, so the newest batch moves on to a next partition and the older ones can be dropped.
 */
const PARTITION_MAX_SEQS = 2 ** 20;
/** Caps at or above this are no caps (`quoll admin migrate --from-home` copies whole logs). */
const UNCAPPED_BYTES = 2 ** 50;
/**
 * The least part of its cap a trim leaves a pipeline when it drops a partition whole; a partition
 * whose drop would leave less (caps so small that a partition of {@link PARTITION_MIN_SEQS}
 * batches is more than a quarter of it, or batches that grew) has its rows deleted instead.
 */
export function dropKeepsBytes(capBytes: number): number {
  return Math.floor((capBytes * 3) / 4);
}
/**
 * Longest a trim waits for a partition it drops (a read of that pipeline's oldest batches holds
 * it): past that it deletes the rows instead. Other pipelines' reads and writes never touch it.
 */
export const DROP_LOCK_WAIT_MS = 50;
/** The name of a pipeline's partition starting at `firstSeq`. */
export function partitionName(pipelineId: number, firstSeq: number): string {
  return `inference_log_batches_p${pipelineId}_s${firstSeq}`;
}
/**
 * Most partitions {@link PostgresLogBatchWriter.preparePartitions} makes for one pipeline in a
 * transaction (each is a table and its indexes locked to the commit); a write that needs more
 * makes the rest itself.
 */
const PREPARE_MAX_PARTITIONS = 8;
/**
 * The transaction-level advisory lock a total cap step holds, in the two-key form: this class id
 * ("QLTC") and the schema's hash (clusters sharing a database in schemas of their own do not
 * wait for each other). The two-key space is apart from the one-key space every other advisory
 * lock of Quoll uses (migrations, replicas, `migrate --from-home`: `hashtext(...)` keys), so a
 * hash that happens to equal one of those never stops the total cap.
 */
export const TOTAL_CAP_LOCK_CLASS = 0x51_4c_54_43;
const TOTAL_CAP_LOCK = `${TOTAL_CAP_LOCK_CLASS}, hashtext(coalesce(current_schema(), ''))`;
/** PostgreSQL's `check_violation`: among others, a row for which no partition exists. */
const CHECK_VIOLATION = '23514';

/** Oldest batches a trim reads first (a hand-off's worth and more), and at most per statement. */
const TRIM_FIRST_PAGE = 32;
const TRIM_MAX_PAGE = 2048;
/** Longest Int64 time, as the "no rows yet" head. */
const NO_TIME = -(2n ** 63n);

/** Retention caps, in batch bytes, and how long retention waits for a lock. */
export interface LogRetentionCaps {
  maxBytesPerPipeline: number;
  maxBytesTotal: number;
  /**
   * Longest a retention step waits for a lock another transaction holds (the head of the
   * pipeline holding the oldest batches, or a batch row) before it passes that pipeline over.
   * @default 1000
   */
  retentionLockWaitMs?: number;
  /**
   * Batch bytes a partition of the batches table is made for. By default an eighth of the
   * smaller cap; a writer without caps (both at or above 2^50) sizes each partition it makes by
   * an eighth of the write that makes it, unless this says (`quoll admin migrate --from-home`:
   * an eighth of the copied log).
   */
  partitionBytes?: number;
}

/** Default of {@link LogRetentionCaps.retentionLockWaitMs}. */
export const RETENTION_LOCK_WAIT_MS = 1000;
/** PostgreSQL's `lock_not_available`: `lock_timeout` passed. */
const LOCK_NOT_AVAILABLE = '55P03';

/**
 * Stores inference-log record batches in PostgreSQL (migration 0013), for the writer thread
 * and for `quoll admin migrate`: per pipeline, under its head row (held `FOR UPDATE` until the
 * caller's transaction ends), times below the newest stored time are raised to it and the
 * batches get the next sequence numbers; small batches are merged, each stored batch is one
 * Arrow IPC record-batch message, and many go in one multi-row `INSERT` (one round trip, the
 * bytes sent as binary parameters).
 */
export class PostgresLogBatchWriter {
  readonly #nodeId: string;
  readonly #caps: LogRetentionCaps;
  readonly #now: () => number;
  readonly #encoder = new ArrowMessageEncoder();
  /**
   * The `INSERT`s' protocol messages, built in one buffer reused from statement to statement
   * (each batch's bytes copied into it once from the encoder's chunks): the driver would build
   * each in a fresh buffer grown value by value, memory outside V8's heap that brings the
   * writer isolate's full collections forward.
   */
  readonly #messages = new BoundMessageBuffer();
  /** Schema ids whose row is committed (a rolled-back insert does not count). */
  readonly #storedSchemas = new Set<string>();
  /** Whether a write since the last {@link enforceTotalRetention} may have passed the total cap. */
  #overTotal = true;
  /**
   * Each pipeline's head as this writer last wrote it (`next_seq`, `last_time`), for
   * {@link writeAlone}. It may be stale (a rolled-back write, another node's): a stale head
   * never matches the row it is checked against, so it only costs a fallback.
   */
  readonly #heads = new Map<number, { nextSeq: number; lastTime: bigint }>();
  /** Pipelines {@link writeAlone} left over their byte cap, with the bytes it read. */
  readonly #trimDue = new Map<number, number>();
  /** Batch bytes deleted by retention since this writer's last `VACUUM` (see {@link vacuumAfterTrimmedBytes}). */
  #trimmedSinceVacuum = 0;
  /** Pipelines whose head a retention step waited for in vain: not waited for again until taken. */
  readonly #heldHeads = new Set<number>();
  /** `retentionLockWaitMs` (at least 1: a `lock_timeout` of 0 waits forever). */
  readonly #lockWaitMs: number;
  /**
   * Each pipeline's end of its partitions (the first seq none holds) as this writer last saw or
   * made it in a transaction that committed, for {@link writeAlone} and to skip reading the list.
   */
  readonly #partEnd = new Map<number, number>();
  /**
   * Partition ends made in the transaction under way: they count (in {@link #partEnd}) once
   * {@link committed} says it committed, and are forgotten by {@link rolledBack}. A partition
   * end taken as made before the commit outlives a rollback: every later write of the pipeline
   * would skip making the partition and fail (no partition for its rows) for ever.
   */
  readonly #pendingPartEnd = new Map<number, number>();
  /**
   * Each pipeline's batches as {@link preparePartitions} merged them, for the {@link write} of
   * the same batches that follows it in the transaction (merging them once).
   */
  readonly #prepared = new Map<number, { batches: readonly RecordBatch[]; merged: RecordBatch[] }>();
  /** Whether partitions may be emptied and not yet detached (see {@link detachEmptiedPartitions}). */
  #detachDue = true;

  constructor(nodeId: string, caps: LogRetentionCaps, now: () => number = Date.now) {
    this.#nodeId = nodeId;
    this.#caps = caps;
    this.#now = now;
    this.#lockWaitMs = Math.max(1, Math.ceil(caps.retentionLockWaitMs ?? RETENTION_LOCK_WAIT_MS));
  }

  /** Counts schemas as stored once the transaction that inserted them has committed. */
  committed(schemaIds: readonly string[]): void {
    for (const id of schemaIds) this.#storedSchemas.add(id);
    for (const [id, end] of this.#pendingPartEnd) {
      this.#partEnd.set(id, Math.max(end, this.#partEnd.get(id) ?? 0));
    }
    this.#pendingPartEnd.clear();
  }

  /**
   * Forgets what the transaction under way made (it rolled back): its partitions are gone. A
   * writer not told so still recovers: a write that finds no partition for its rows forgets
   * the pipeline's partitions and throws, and the retry makes them again.
   */
  rolledBack(): void {
    this.#pendingPartEnd.clear();
    this.#prepared.clear();
  }

  /**
   * Stores one pipeline's batches in the caller's transaction, then applies the pipeline's
   * byte cap. Returns the schema ids it inserted (pass them to {@link committed} after commit).
   * Several pipelines in one transaction must come in ascending id order (heads are locked in
   * that order, so two nodes never deadlock).
   */
  async write(sql: Sql, pipelineId: number, batches: readonly RecordBatch[]): Promise<string[]> {
    // One statement is in flight while the next batches are encoded: the driver queues it
    // behind the one executing, and this waits for the older one before sending a third.
    const flight: { last: Promise<number> | null } = { last: null };
    try {
      return await this.#write(sql, pipelineId, batches, flight);
    } catch (err) {
      // A statement may still be waiting in the driver's queue, holding views of the batches.
      await flight.last?.catch(() => undefined);
      throw err;
    }
  }

  /**
   * For a transaction that stores several pipelines: locks the pipeline's head and makes,
   * before any of them inserts, the partitions its batches need once merged (at most
   * {@link PREPARE_MAX_PARTITIONS}; a write needing more makes the rest). An attach after an
   * insert in the same transaction could wait for a concurrent `DETACH … CONCURRENTLY` that
   * waits for this transaction: a deadlock PostgreSQL breaks after a second. The {@link write}
   * of the same batches that follows uses the batches merged here.
   */
  async preparePartitions(sql: Sql, pipelineId: number, batches: readonly RecordBatch[]): Promise<void> {
    if (batches.length === 0) return;
    // The head is locked whether or not this writer knows it (a node's first write, a pipeline
    // new to it, another node's writes since): a view of it could be stale, and the seqs the
    // write takes are those of the locked row.
    const locked = await sql.one<{ next_seq: number; rows: number; bytes: number }>(
      `INSERT INTO inference_log_heads AS h (pipeline_id, next_seq) VALUES ($1, 1)
       ON CONFLICT (pipeline_id) DO UPDATE SET next_seq = h.next_seq
       RETURNING next_seq, rows, bytes`,
      [pipelineId],
    );
    if (locked === null) return;
    // Merged here, and kept for the write: partitions for the stored batches, not for the
    // input ones (a backlog after an outage is thousands of one-row batches per pipeline that
    // merge into a few; a partition made per input seq is a table and its indexes locked to
    // the commit, and enough of them run the server's lock table out).
    const merged = rowStep(pipelineId, () => this.#merge(batches));
    this.#prepared.set(pipelineId, { batches, merged });
    if (merged.length === 0) return;
    await this.#ensurePartitions(
      sql,
      pipelineId,
      locked.next_seq,
      locked.next_seq + merged.length,
      this.#estimate(merged, Number(locked.rows), Number(locked.bytes)),
      PREPARE_MAX_PARTITIONS,
    );
  }

  /**
   * The bytes of one stored batch of `merged`, as large as the pipeline's stored ones (by its
   * bytes per row), or for its first, as these in memory.
   */
  #estimate(merged: readonly RecordBatch[], headRows: number, headBytes: number): number {
    let estimate = 0;
    for (const b of merged) {
      estimate += headRows > 0 ? (b.numRows * headBytes) / headRows : b.data.byteLength;
    }
    return estimate / Math.max(1, merged.length);
  }

  /**
   * Stores one pipeline's batches in a single statement, outside any transaction (one round
   * trip instead of `BEGIN`, the head, the `INSERT`, the head's update and `COMMIT`), when this
   * writer knows the pipeline's head from its own last write: the statement updates the head
   * only if it still holds that `next_seq` and `last_time` (so nothing was stored meanwhile,
   * by this node or another), and inserts the batches only if it did, atomically. Returns
   * false, having stored nothing, when the head is unknown or moved, a schema is not stored
   * yet, or the batches do not fit one statement: {@link write} in a transaction does it then.
   * The pipeline's byte cap is applied by the next {@link enforceTotalRetention}.
   */
  async writeAlone(sql: Sql, pipelineId: number, batches: readonly RecordBatch[]): Promise<boolean> {
    const head = this.#heads.get(pipelineId);
    if (head === undefined) return false;
    const merged = rowStep(pipelineId, () => this.#merge(batches));
    if (merged.length === 0 || merged.length > INSERT_MAX_BATCHES) return false;
    let seq = head.nextSeq;
    let lastTime = head.lastTime;
    let rows = 0;
    let bytes = 0;
    const tuples: string[] = [];
    const values: BoundValue[] = [];
    for (const original of merged) {
      const { batch, last, schemaId } = rowStep(pipelineId, () => {
        const clamped = clampLogTime(original, lastTime);
        return { ...clamped, schemaId: schemaIdOf(clamped.batch.schema) };
      });
      lastTime = last;
      if (!this.#storedSchemas.has(schemaId)) return false;
      const { fields, msg } = rowStep(pipelineId, () => this.#encode(batch, seq, schemaId, last));
      seq++;
      const b = 9 + values.length;
      tuples.push(
        `($${b + 1}::bigint, $${b + 2}::text, $${b + 3}::integer, $${b + 4}::integer, $${b + 5}::bigint, $${b + 6}::bigint, $${b + 7}::bytea)`,
      );
      values.push(...fields, msg);
      rows += batch.numRows;
      bytes += msg.bytes;
    }
    if (bytes > INSERT_MAX_BYTES) return false;
    // Its seqs must fall in partitions that exist: the locked write makes them.
    if ((this.#partEnd.get(pipelineId) ?? 0) < seq) return false;
    const result = await sql
      .bound(
        new PostgresBoundStatement(
          `quoll_log_append_${merged.length}`,
          // The head's update runs first (the insert reads it), and the insert stores nothing when
          // it changed no row. The total reads the statement's snapshot (the head before), hence `+ $5`.
          `WITH head AS (
           UPDATE inference_log_heads
              SET next_seq = $2::bigint, last_time = $3::bigint, rows = rows + $4::bigint, bytes = bytes + $5::bigint,
                  oldest_at = coalesce(oldest_at, $9::bigint)
            WHERE pipeline_id = $1::integer AND next_seq = $6::bigint AND last_time IS NOT DISTINCT FROM $7::bigint
           RETURNING bytes
         ), stored AS (
           INSERT INTO inference_log_batches
             (pipeline_id, seq, schema_id, rows, bytes, min_time, max_time, node_id, created_at, data)
           SELECT $1::integer, v.seq, v.schema_id, v.rows, v.bytes, v.min_time, v.max_time, $8::text, $9::bigint, v.data
             FROM (VALUES ${tuples.join(', ')}) AS v (seq, schema_id, rows, bytes, min_time, max_time, data)
            WHERE EXISTS (SELECT FROM head)
         )
         SELECT bytes, (SELECT coalesce(sum(bytes), 0) FROM inference_log_heads) + $5::bigint AS total
           FROM head`,
          [
            String(pipelineId),
            String(seq),
            String(lastTime),
            String(rows),
            String(bytes),
            String(head.nextSeq),
            head.lastTime === NO_TIME ? null : String(head.lastTime),
            this.#nodeId,
            String(this.#now()),
            ...values,
          ],
          this.#messages,
        ),
      )
      .catch((err: unknown) => {
        // A partition this writer made in a transaction that rolled back: none holds these seqs.
        if (sqlState(err) !== CHECK_VIOLATION) throw err;
        this.#forgetPartitions(pipelineId);
        return null;
      });
    const row = result?.rows[0];
    if (row === undefined) {
      this.#heads.delete(pipelineId);
      return false;
    }
    this.#heads.set(pipelineId, { nextSeq: seq, lastTime });
    if (Number(row[1]) > this.#caps.maxBytesTotal) this.#overTotal = true;
    if (Number(row[0]) > this.#caps.maxBytesPerPipeline) this.#trimDue.set(pipelineId, Number(row[0]));
    return true;
  }

  /**
   * The cap partitions are an eighth of: the smaller of the pipeline's and the total cap, so
   * that retention by either drops whole partitions. Without caps: eight times
   * {@link LogRetentionCaps.partitionBytes}, or the bytes of the write that makes the partition
   * (a partition as long as the cap would hold every seq the log will ever have, so no node
   * at its real cap could drop it).
   */
  #partitionCap(writeBytes: number): number {
    if (this.#caps.partitionBytes !== undefined) return this.#caps.partitionBytes * 8;
    const cap = Math.min(this.#caps.maxBytesPerPipeline, this.#caps.maxBytesTotal);
    return cap >= UNCAPPED_BYTES ? writeBytes : cap;
  }

  /** Forgets what this writer knew of a pipeline's partitions: the next write reads the list. */
  #forgetPartitions(pipelineId: number): void {
    this.#partEnd.delete(pipelineId);
    this.#pendingPartEnd.delete(pipelineId);
  }

  /**
   * One stored batch's message, and its `seq, schema_id, rows, bytes, min_time, max_time`
   * parameters (`last` is its clamped newest time).
   */
  #encode(
    batch: RecordBatch,
    seq: number,
    schemaId: string,
    last: bigint,
  ): { fields: string[]; msg: { chunks: Uint8Array[]; bytes: number } } {
    const msg = this.#encoder.encodeBatch(batch);
    const first = timeValues(batch)[0];
    return {
      fields: [String(seq), schemaId, String(batch.numRows), String(msg.bytes), String(first), String(last)],
      msg,
    };
  }

  /** Small batches merged up to the stored batch size. */
  #merge(batches: readonly RecordBatch[]): RecordBatch[] {
    // Stored batches stay small: a page fetches and decodes whole batches, so a 1000-row page
    // should not pull a 16k-row one (at 4096 or 8192 rows a page's p50 more than doubled,
    // docs/benchmarks.md, pgbatch).
    return coalesceLogBatches(
      [...batches],
      COALESCE_BELOW_ROWS,
      Math.min(COALESCE_MAX_ROWS, STORED_BATCH_MAX_ROWS),
      Math.min(COALESCE_MAX_BYTES, STORED_BATCH_MAX_BYTES),
    );
  }

  async #write(
    sql: Sql,
    pipelineId: number,
    batches: readonly RecordBatch[],
    flight: { last: Promise<number> | null },
  ): Promise<string[]> {
    const schemas: string[] = [];
    // One round trip creates the head if missing and locks it (the no-op update takes the lock).
    const head = await sql.one<{ next_seq: number; last_time: string | null; rows: number; bytes: number }>(
      `INSERT INTO inference_log_heads AS h (pipeline_id, next_seq) VALUES ($1, 1)
       ON CONFLICT (pipeline_id) DO UPDATE SET next_seq = h.next_seq
       RETURNING next_seq, last_time::text AS last_time, rows, bytes`,
      [pipelineId],
    );
    if (head === null) throw new Error(`inference log head of pipeline ${pipelineId} vanished`);
    let seq = head.next_seq;
    let lastTime = head.last_time === null ? NO_TIME : BigInt(head.last_time);
    let rows = 0;
    let bytes = 0;
    // Merged by preparePartitions for this write, or here.
    const prepared = this.#prepared.get(pipelineId);
    this.#prepared.delete(pipelineId);
    const merged =
      prepared !== undefined && prepared.batches === batches
        ? prepared.merged
        : rowStep(pipelineId, () => this.#merge(batches));
    if (merged.length > 0) {
      // Before any insert: an attach waits for a concurrent detach, which waits for the
      // transactions that hold the batches table (this one would, after an insert).
      await this.#ensurePartitions(
        sql,
        pipelineId,
        seq,
        seq + merged.length,
        this.#estimate(merged, Number(head.rows), Number(head.bytes)),
      );
    }
    const createdAt = this.#now();
    let values: BoundValue[] = [];
    let pending = 0;
    let pendingBytes = 0;
    const insert = async (): Promise<void> => {
      if (pending === 0) return;
      const tuples: string[] = [];
      for (let k = 0; k < pending; k++) {
        const b = k * 10;
        tuples.push(
          `($${b + 1}, $${b + 2}, $${b + 3}, $${b + 4}, $${b + 5}, $${b + 6}, $${b + 7}, $${b + 8}, $${b + 9}, $${b + 10})`,
        );
      }
      // Prepared once per batch count on the connection; `$10`, `$20` … (the bytes) go as binary.
      const sent = sql
        .bound(
          new PostgresBoundStatement(
            `quoll_log_insert_${pending}`,
            `INSERT INTO inference_log_batches
               (pipeline_id, seq, schema_id, rows, bytes, min_time, max_time, node_id, created_at, data)
             VALUES ${tuples.join(', ')}`,
            values,
            this.#messages,
          ),
        )
        .then((r) => r.rowCount);
      // Its failure is seen where it is awaited, below or at the next insert.
      sent.catch(() => undefined);
      values = [];
      pending = 0;
      pendingBytes = 0;
      const older = flight.last;
      flight.last = sent;
      await older;
    };
    for (const original of merged) {
      const { batch, last, schemaId } = rowStep(pipelineId, () => {
        const clamped = clampLogTime(original, lastTime);
        return { ...clamped, schemaId: schemaIdOf(clamped.batch.schema) };
      });
      lastTime = last;
      if (!this.#storedSchemas.has(schemaId) && !schemas.includes(schemaId)) {
        const message = rowStep(pipelineId, () =>
          Buffer.concat(this.#encoder.encodeSchema(batch.schema).chunks),
        );
        await sql.run(
          'INSERT INTO inference_log_schemas (schema_id, message) VALUES ($1, $2) ON CONFLICT (schema_id) DO NOTHING',
          [schemaId, message],
        );
        schemas.push(schemaId);
      }
      const { fields, msg } = rowStep(pipelineId, () => this.#encode(batch, seq, schemaId, last));
      seq++;
      values.push(String(pipelineId), ...fields, this.#nodeId, String(createdAt), msg);
      pending++;
      pendingBytes += msg.bytes;
      rows += batch.numRows;
      bytes += msg.bytes;
      if (pending >= INSERT_MAX_BATCHES || pendingBytes >= INSERT_MAX_BYTES) {
        await insert().catch((err: unknown) => {
          if (sqlState(err) === CHECK_VIOLATION) this.#forgetPartitions(pipelineId);
          throw err;
        });
      }
    }
    try {
      await insert();
      await flight.last;
    } catch (err) {
      // No partition for a row: this writer's view of the pipeline's partitions was wrong (made
      // in a transaction that rolled back). Forgotten, so the retry reads the list again.
      if (sqlState(err) === CHECK_VIOLATION) this.#forgetPartitions(pipelineId);
      throw err;
    }
    // The total over all pipelines comes in the same round trip, so that the total cap costs
    // a statement of its own only when it may be passed. The subquery reads the statement's
    // snapshot (this head before the update), hence `+ $5`.
    const updated = await sql.one<{ bytes: number; total: number }>(
      `UPDATE inference_log_heads SET next_seq = $2, last_time = $3, rows = rows + $4, bytes = bytes + $5,
              oldest_at = coalesce(oldest_at, $6)
       WHERE pipeline_id = $1
       RETURNING bytes, (SELECT coalesce(sum(bytes), 0) FROM inference_log_heads) + $5 AS total`,
      [pipelineId, seq, lastTime === NO_TIME ? null : String(lastTime), rows, bytes, String(createdAt)],
    );
    this.#heads.set(pipelineId, { nextSeq: seq, lastTime });
    if ((updated?.total ?? 0) > this.#caps.maxBytesTotal) this.#overTotal = true;
    const held = updated?.bytes ?? 0;
    if (held > this.#caps.maxBytesPerPipeline) await this.#trimToCap(sql, pipelineId, held);
    return schemas;
  }

  /**
   * Makes the partitions that hold the seqs `from` to `end` (exclusive) of a pipeline whose head
   * the caller's transaction holds, each {@link partitionSeqs} long, after the last one there is
   * (or from `from`, for a pipeline without any). Each is a table made apart and then attached,
   * which locks the batches table only against other attaches and detaches, not reads or writes.
   */
  async #ensurePartitions(
    sql: Sql,
    pipelineId: number,
    from: number,
    end: number,
    batchBytes: number,
    most = Infinity,
  ): Promise<void> {
    // Only ends known committed are trusted; otherwise the list says (this transaction's too).
    if ((this.#partEnd.get(pipelineId) ?? 0) >= end) return;
    const row = await sql.one<{ end: string | null }>(
      'SELECT max(end_seq)::text AS end FROM inference_log_partitions WHERE pipeline_id = $1',
      [pipelineId],
    );
    let lo = row?.end == null ? from : Number(row.end);
    const step = partitionSeqs(this.#partitionCap(batchBytes * (end - from)), batchBytes);
    for (let made = 0; lo < end && made < most; made++) {
      const hi = lo + step;
      const name = partitionName(pipelineId, lo);
      // Integers only in the text: one round trip, as a simple query.
      await sql.run(
        `CREATE TABLE ${name} (LIKE inference_log_batches INCLUDING ALL);
         ALTER TABLE inference_log_batches ATTACH PARTITION ${name}
           FOR VALUES FROM (${pipelineId}, ${lo}) TO (${pipelineId}, ${hi});
         INSERT INTO inference_log_partitions (name, pipeline_id, first_seq, end_seq)
           VALUES ('${name}', ${pipelineId}, ${lo}, ${hi})`,
      );
      lo = hi;
    }
    // Counted once the transaction commits (see #pendingPartEnd).
    this.#pendingPartEnd.set(pipelineId, lo);
  }

  /**
   * Applies a pipeline's byte cap (it holds `held` bytes, over it), the caller holding its head:
   * drops its oldest partitions whole while it stays over the cap and keeps at least
   * {@link dropKeepsBytes} of it, then, if it is still over, deletes its oldest batches row by
   * row to a step below the cap (see {@link trimStepBytes}). A partition holding the newest
   * batch is never dropped.
   */
  async #trimToCap(sql: Sql, pipelineId: number, held: number): Promise<number> {
    const cap = this.#caps.maxBytesPerPipeline;
    const dropped = await this.#dropPartitions(sql, pipelineId, held - cap, held - dropKeepsBytes(cap));
    const over = held - dropped - cap;
    if (over <= 0) return dropped;
    return dropped + (await this.#trim(sql, pipelineId, over + trimStepBytes(cap)));
  }

  /**
   * Empties a pipeline's oldest partitions (`TRUNCATE`, waiting at most
   * {@link DROP_LOCK_WAIT_MS} for each) until `excess` bytes are gone, dropping none that would
   * take more than `most` bytes in all or that holds the newest batch, and updates the head.
   * An emptied partition is detached and dropped later, beside the writes
   * ({@link detachEmptiedPartitions}). Returns the batch bytes dropped.
   */
  async #dropPartitions(sql: Sql, pipelineId: number, excess: number, most: number): Promise<number> {
    const parts = await sql.rows<{ name: string; first: string; end: string; newest: string }>(
      `SELECT p.name, p.first_seq::text AS first, p.end_seq::text AS end, (h.next_seq - 1)::text AS newest
         FROM inference_log_partitions p JOIN inference_log_heads h USING (pipeline_id)
        WHERE p.pipeline_id = $1 AND NOT p.emptied ORDER BY p.first_seq LIMIT 8`,
      [pipelineId],
    );
    let dropped = 0;
    for (const p of parts) {
      if (dropped >= excess || Number(p.end) > Number(p.newest)) break;
      // Its batches, by the partition's range (the plan reads that partition only).
      const held = await sql.one<{ rows: string; bytes: string; lt: string }>(
        `SELECT coalesce(sum(rows), 0)::text AS rows, coalesce(sum(bytes), 0)::text AS bytes,
                current_setting('lock_timeout') AS lt
           FROM inference_log_batches WHERE pipeline_id = $1 AND seq >= $2 AND seq < $3`,
        [pipelineId, p.first, p.end],
      );
      const bytes = Number(held?.bytes ?? 0);
      if (dropped + bytes > most) break;
      try {
        await sql.run(
          `SAVEPOINT quoll_drop; SET LOCAL lock_timeout = '${DROP_LOCK_WAIT_MS}ms'; TRUNCATE ${p.name}`,
        );
      } catch (err) {
        if (sqlState(err) !== LOCK_NOT_AVAILABLE) throw err;
        // A read holds it: the rows are deleted instead (the savepoint restores the lock timeout).
        await sql.run('ROLLBACK TO SAVEPOINT quoll_drop');
        break;
      }
      await sql.run('RELEASE SAVEPOINT quoll_drop');
      await sql.run("SELECT set_config('lock_timeout', $1, true)", [held?.lt ?? '0']);
      await sql.run('UPDATE inference_log_partitions SET emptied = true WHERE name = $1', [p.name]);
      await this.#moveFirst(sql, pipelineId, held?.rows ?? '0', String(bytes), Number(p.end));
      this.#detachDue = true;
      dropped += bytes;
    }
    return dropped;
  }

  /**
   * First the byte caps of pipelines {@link writeAlone} left over theirs, each in a
   * transaction of its own holding the pipeline's head. Then, over the total cap: the pipelines
   * holding the oldest batches give them up first, each step in a transaction of its own
   * (`transaction` runs one). Reads the total only when a write since the last call (or the
   * first call) may have passed the cap: every write reads the total of all nodes' pipelines,
   * so rows another node stored count at this node's next write, and that node checks after
   * its own.
   *
   * Waits for no lock another transaction holds for long: another node stopped mid-write would
   * otherwise hold this writer's next hand-offs (their acks, read-your-writes, the queue behind
   * them) and its stop for as long. A pipeline's own cap waits for no head (the locked write
   * holding it applies the cap itself; otherwise it stays due for the next call). Over the
   * total, a step waits up to `retentionLockWaitMs` for the head of the pipeline holding the
   * oldest batches (a write in progress ends within it, and the oldest go first), then passes
   * that pipeline over (the next-oldest give up their batches instead) and waits for its head
   * no more until a step has taken it again.
   */
  async enforceTotalRetention(
    sql: Sql,
    transaction: (fn: (tx: Sql) => Promise<void>) => Promise<void>,
  ): Promise<void> {
    for (const pipelineId of [...this.#trimDue.keys()]) {
      const trimmed = await this.#underHead(transaction, pipelineId, false, null, async (tx, bytes) => {
        if (bytes > this.#caps.maxBytesPerPipeline) await this.#trimToCap(tx, pipelineId, bytes);
      });
      if (trimmed) this.#trimDue.delete(pipelineId);
    }
    if (this.#overTotal) {
      this.#overTotal = false;
      try {
        await this.#enforceTotal(sql, transaction);
      } catch (err) {
        // A step that failed (its drop rolled back with it, as a stalled step the server ended)
        // left the excess: the next pass checks again, with or without a write before it.
        this.#overTotal = true;
        throw err;
      }
    }
  }

  /**
   * Whether retention is still due after the last {@link enforceTotalRetention} (or a write
   * since): a pass that found the total cap's lock taken, passed a held head over or failed
   * leaves the total (or a pipeline's own cap) to a later pass. The writer thread retries such
   * a pass on its own, backing off, so a cluster gone quiet still comes down to the caps.
   */
  get retentionDue(): boolean {
    return this.#overTotal || this.#trimDue.size > 0;
  }

  /**
   * Whether this writer's trims since the last call that said so have deleted enough bytes
   * ({@link vacuumAfterTrimmedBytes} of the smaller cap) for a {@link VACUUM_LOG_BATCHES}; the
   * count starts again when it says so. The writer thread runs the vacuum on a connection of
   * its own, beside its writes (`postgres-log-writer-worker.ts`).
   */
  takeVacuumDue(): boolean {
    const cap = Math.min(this.#caps.maxBytesPerPipeline, this.#caps.maxBytesTotal);
    if (this.#trimmedSinceVacuum < vacuumAfterTrimmedBytes(cap)) return false;
    this.#trimmedSinceVacuum = 0;
    return true;
  }

  /**
   * Whether partitions this writer emptied (or a restarted one, or another node, may have left)
   * wait for {@link detachEmptiedPartitions}; says so once.
   */
  takeDetachDue(): boolean {
    const due = this.#detachDue;
    this.#detachDue = false;
    return due;
  }

  /**
   * Trims the pipelines holding the oldest batches until the total is within its cap. A
   * pipeline whose head stays held, or that had nothing left to trim once locked, is passed
   * over for the rest of the call, so the loop ends: each step deletes a batch or passes a
   * pipeline over. When it ends over the cap, the next call checks again.
   */
  async #enforceTotal(
    sql: Sql,
    transaction: (fn: (tx: Sql) => Promise<void>) => Promise<void>,
  ): Promise<void> {
    const passedOver: number[] = [];
    for (;;) {
      const row = await sql.one<{ bytes: number | null }>(
        'SELECT sum(bytes) AS bytes FROM inference_log_heads',
      );
      const total = row?.bytes ?? 0;
      if (total <= this.#caps.maxBytesTotal) return;
      // From the heads alone: a query over the batches table that no pipeline id prunes would
      // plan and lock every partition of every pipeline (the server's lock table runs out at a
      // few thousand). Pipelines with more than their newest batch, oldest first.
      const oldest = await sql.one<{ pipeline_id: number }>(
        `SELECT pipeline_id FROM inference_log_heads
          WHERE first_seq < next_seq - 1 AND oldest_at IS NOT NULL AND pipeline_id <> ALL($1::integer[])
          ORDER BY oldest_at, pipeline_id LIMIT 1`,
        [passedOver],
      );
      if (oldest === null) {
        // Over the cap with only held pipelines left to trim: a later call tries them again.
        if (passedOver.length > 0) this.#overTotal = true;
        return;
      }
      const id = oldest.pipeline_id;
      let deleted = 0;
      let busy = false;
      // One total pass step at a time in the cluster: another node's step on another pipeline,
      // not committed yet, is not in the total a step reads, and both would drop for one excess
      // (below 3/4 of the cap). Tried first, before any head: the holder may hold the head this
      // step would wait for. Not waited for: its holder is applying this cap, and this node
      // checks again at its next pass. A holder that stalls (paused, cut off) cannot keep it:
      // its step's transaction may sit idle between statements at most `retentionLockWaitMs`
      // (its statements run back to back), then the server ends it, rolling its drop back and
      // releasing the lock and the head, and the next node to try applies the cap.
      const totalLock = async (tx: Sql): Promise<boolean> => {
        const lock = await tx.one<{ ok: boolean }>(
          `SELECT pg_try_advisory_xact_lock(${TOTAL_CAP_LOCK}) AS ok`,
        );
        busy = lock?.ok !== true;
        if (!busy) {
          await tx.run("SELECT set_config('idle_in_transaction_session_timeout', $1, true)", [
            `${this.#lockWaitMs}ms`,
          ]);
        }
        return !busy;
      };
      const locked = await this.#underHead(
        transaction,
        id,
        !this.#heldHeads.has(id),
        totalLock,
        async (tx) => {
          // Set by the attempt that commits (a deadlock retries the whole transaction).
          deleted = 0;
          // The total again, now that the head is held: another node applying the same cap may
          // have dropped this excess while this one waited for the head (the total read above is
          // then stale, and acting on it would drop the excess twice, below 3/4 of the cap).
          const now = await tx.one<{ bytes: string | null }>(
            'SELECT sum(bytes)::text AS bytes FROM inference_log_heads',
          );
          const current = Number(now?.bytes ?? 0);
          const excess = current - this.#caps.maxBytesTotal;
          if (excess <= 0) return;
          // Its oldest partitions whole first, while the total keeps at least 3/4 of its cap (a
          // partition is at most an eighth of it: see #partitionCap); rows only for what is left.
          deleted = await this.#dropPartitions(
            tx,
            id,
            excess,
            current - dropKeepsBytes(this.#caps.maxBytesTotal),
          );
          if (deleted < excess) deleted += await this.#trim(tx, id, excess - deleted);
        },
      );
      if (busy) {
        // Its holder's step may yet fail (or stall and be ended): checked again at the next pass.
        this.#overTotal = true;
        return;
      }
      if (locked) this.#heldHeads.delete(id);
      else this.#heldHeads.add(id);
      if (deleted === 0) passedOver.push(id);
    }
  }

  /**
   * Runs `fn` in a transaction of its own holding the pipeline's head, given the head's bytes.
   * Returns false, having done nothing, when another transaction holds the head: at once
   * (`wait` false), or once `retentionLockWaitMs` has passed. Every statement in it waits for
   * a lock at most that long (a batch row another session locked, too). `first`, if given,
   * runs before the head is taken; when it says false the transaction ends there, having taken
   * no head, and this returns false.
   */
  async #underHead(
    transaction: (fn: (tx: Sql) => Promise<void>) => Promise<void>,
    pipelineId: number,
    wait: boolean,
    first: ((tx: Sql) => Promise<boolean>) | null,
    fn: (tx: Sql, bytes: number) => Promise<void>,
  ): Promise<boolean> {
    let locked = false;
    try {
      await transaction(async (tx) => {
        locked = false;
        await tx.run("SELECT set_config('lock_timeout', $1, true)", [`${this.#lockWaitMs}ms`]);
        if (first !== null && !(await first(tx))) return;
        const head = await tx.one<{ bytes: string }>(
          `SELECT bytes FROM inference_log_heads WHERE pipeline_id = $1 FOR UPDATE${wait ? '' : ' SKIP LOCKED'}`,
          [pipelineId],
        );
        // No row: another transaction holds it (heads are never deleted).
        locked = head !== null;
        if (head !== null) await fn(tx, Number(head.bytes));
      });
    } catch (err) {
      // Rolled back: nothing this step did is kept.
      if (sqlState(err) !== LOCK_NOT_AVAILABLE) throw err;
      return false;
    }
    return locked;
  }

  /**
   * Takes `rows` and `bytes` off a pipeline's head (the caller holds it) and moves its first seq
   * up to `firstSeq`, and its `oldest_at` to the `created_at` of the batch at its first seq
   * (it exists: retention keeps the newest batch). That batch is read in a statement of its
   * own with the seq as a parameter, which the planner prunes to one partition: a seq bound
   * taken from the head's row in the same statement would plan, and lock until the commit,
   * every partition of the pipeline.
   */
  async #moveFirst(
    sql: Sql,
    pipelineId: number,
    rows: string,
    bytes: string,
    firstSeq: number,
  ): Promise<void> {
    const head = await sql.one<{ first: string }>(
      `UPDATE inference_log_heads SET rows = rows - $2, bytes = bytes - $3, first_seq = greatest(first_seq, $4)
        WHERE pipeline_id = $1 RETURNING first_seq::text AS first`,
      [pipelineId, rows, bytes, String(firstSeq)],
    );
    if (head === null) return;
    await sql.run(
      `UPDATE inference_log_heads SET oldest_at = (SELECT created_at FROM inference_log_batches
          WHERE pipeline_id = $1 AND seq = $2::bigint)
        WHERE pipeline_id = $1`,
      [pipelineId, head.first],
    );
  }

  /**
   * Deletes a pipeline's oldest batches until at least `excess` bytes are gone, keeping its
   * newest batch. The caller holds the pipeline's head row. Returns the batch bytes deleted.
   *
   * Reads the oldest batches a page at a time ({@link TRIM_FIRST_PAGE} first, growing), by the
   * primary key from the oldest on, and stops at the page that covers `excess`: a log at its
   * cap trims about a hand-off's batches at each write, and reading the whole pipeline's
   * batches for them (a running sum over every row, about 6 ms of the backend's CPU at a
   * 1 GiB cap of 88 kB batches) cost a node more than storing the hand-off.
   */
  async #trim(sql: Sql, pipelineId: number, excess: number): Promise<number> {
    // The seqs it may delete, read first (the caller holds the head): every page's read is
    // then bounded by constants, so the planner prunes it to the one or two partitions it
    // reads (a bound from a subquery would plan, and lock to the commit, all the pipeline's).
    // From the head's first seq, or its oldest partition not emptied if that starts later.
    const bounds = await sql.one<{ first: string; newest: string; part: string | null }>(
      `SELECT h.first_seq::text AS first, (h.next_seq - 1)::text AS newest,
              (SELECT min(p.first_seq) FROM inference_log_partitions p
                WHERE p.pipeline_id = $1 AND NOT p.emptied)::text AS part
         FROM inference_log_heads h WHERE h.pipeline_id = $1`,
      [pipelineId],
    );
    if (bounds === null || bounds.part === null) return 0;
    // Seqs are contiguous from the first one kept to the newest (retention deletes the oldest).
    let lo = Math.max(Number(bounds.first), Number(bounds.part));
    const newest = Number(bounds.newest);
    let cut: number | null = null;
    let rows = 0;
    let bytes = 0;
    for (
      let limit = TRIM_FIRST_PAGE;
      bytes < excess && lo < newest;
      limit = Math.min(limit * 4, TRIM_MAX_PAGE)
    ) {
      const hi = Math.min(lo + limit, newest);
      // `s`: a column named `seq` would make `ORDER BY seq` sort the text.
      const page: { s: string; rows: number; bytes: number }[] = await sql.rows(
        `SELECT seq::text AS s, rows, bytes FROM inference_log_batches
          WHERE pipeline_id = $1 AND seq >= $2 AND seq < $3
          ORDER BY seq`,
        [pipelineId, String(lo), String(hi)],
      );
      for (const b of page) {
        if (bytes >= excess) break;
        cut = Number(b.s);
        rows += Number(b.rows);
        bytes += Number(b.bytes);
      }
      lo = hi;
    }
    if (cut === null) return 0;
    await sql.run('DELETE FROM inference_log_batches WHERE pipeline_id = $1 AND seq <= $2', [
      pipelineId,
      String(cut),
    ]);
    await this.#moveFirst(sql, pipelineId, String(rows), String(bytes), cut + 1);
    // Partitions whose every seq is gone now: detached and dropped beside the writes.
    const spent = await sql.run(
      'UPDATE inference_log_partitions SET emptied = true WHERE pipeline_id = $1 AND end_seq <= $2 AND NOT emptied',
      [pipelineId, String(cut + 1)],
    );
    if (spent > 0) this.#detachDue = true;
    // Counted before the caller's commit: a rolled-back trim only brings a vacuum forward.
    this.#trimmedSinceVacuum += bytes;
    return bytes;
  }
}

/** setTimeout's longest wait (2^31−1 ms, about 24.8 days): a longer one fires after 1 ms. */
export const MAX_TIMER_DELAY_MS = 2 ** 31 - 1;

/** `ms` held to what setTimeout waits for as asked: 1 ms … {@link MAX_TIMER_DELAY_MS} (NaN: the longest). */
export function timerDelay(ms: number): number {
  return Number.isNaN(ms) ? MAX_TIMER_DELAY_MS : Math.min(MAX_TIMER_DELAY_MS, Math.max(1, Math.ceil(ms)));
}

/** Runs one statement outside any transaction block (a client of its own). */
export type RunStatement = (text: string, values?: readonly unknown[]) => Promise<{ rows: unknown[] }>;

/**
 * Detaches and drops the partitions of the batches table that retention emptied (any node's),
 * on a connection outside any transaction: `DETACH PARTITION … CONCURRENTLY` takes no lock that
 * another session's read or insert waits for (it waits for the transactions that use the table
 * to end instead), then the detached table is dropped, which locks only itself.
 *
 * A detach left half done (its statement cancelled, as a node's stop does) leaves its partition
 * pending detach, and while one is, PostgreSQL refuses to detach any other partition of the
 * table (55000, naming the pending one): such partitions are finished (`FINALIZE`) first,
 * wherever they sort in the list. A refusal met later names the partition pending (another
 * node's detach under way, or one left since): that one is finalized (waiting for the detach
 * under way, if any), never the one being detached, and the detach tried once more. One that
 * fails here is left to a later cleanup.
 *
 * `aborted` is asked before each partition: once it says so (a stop has come) no other is
 * begun; a statement cancelled (57014, the stop's `pg_cancel_backend`) ends the cleanup too.
 * Returns the partitions dropped; throws the first failure once the others were tried.
 */
export async function detachEmptiedPartitions(
  run: RunStatement,
  aborted: () => boolean = () => false,
): Promise<number> {
  const pending = await run(
    `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
      WHERE i.inhparent = 'inference_log_batches'::regclass AND i.inhdetachpending`,
  );
  const { rows } = await run(
    'SELECT name FROM inference_log_partitions WHERE emptied ORDER BY pipeline_id, first_seq LIMIT 64',
  );
  const pendingNames = (pending.rows as { name: string }[]).map((r) => r.name);
  const names = [...pendingNames, ...(rows as { name: string }[]).map((r) => r.name)].filter(
    (name, i, all) => all.indexOf(name) === i,
  );
  const finalize = async (name: string): Promise<void> => {
    try {
      await run(`ALTER TABLE inference_log_batches DETACH PARTITION ${name} FINALIZE`);
    } catch (err) {
      const state = sqlState(err);
      // Finished meanwhile (by the node whose detach it was, or another's cleanup).
      if (state !== '42P01' && state !== '42P16' && state !== OBJECT_NOT_IN_PREREQUISITE_STATE) throw err;
    }
  };
  let dropped = 0;
  let failure: Error | null = null;
  for (const name of names) {
    if (aborted()) break;
    // Names are made by partitionName (letters, digits and underscores) and read back from the list.
    if (!PARTITION_NAME.test(name)) continue;
    try {
      if (pendingNames.includes(name)) await finalize(name);
      else await detachConcurrently(run, name, finalize);
      await run(`DROP TABLE IF EXISTS ${name}`);
      await run('DELETE FROM inference_log_partitions WHERE name = $1', [name]);
      dropped++;
    } catch (err) {
      failure ??= err instanceof Error ? err : new Error(String(err));
      // Cancelled: a stop has come (it cancels one statement; the rest is left as well).
      if (sqlState(err) === PG_QUERY_CANCELED) break;
    }
  }
  if (failure !== null) throw failure;
  return dropped;
}

/** `DETACH … CONCURRENTLY` of `name`, done already counting as done; see {@link detachEmptiedPartitions}. */
async function detachConcurrently(
  run: RunStatement,
  name: string,
  finalize: (name: string) => Promise<void>,
): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await run(`ALTER TABLE inference_log_batches DETACH PARTITION ${name} CONCURRENTLY`);
      return;
    } catch (err) {
      const state = sqlState(err);
      // Not a partition any more (detached and dropped already), or detached: dropped after.
      if (state === '42P01' || state === '42P16') return;
      if (state !== OBJECT_NOT_IN_PREREQUISITE_STATE || attempt > 0) throw err;
      // "partition "X" already pending detach …": finish X's detach (this one's own, half
      // done, or another's), then try this one again unless it was this one.
      const named = /partition "([^"]+)" already pending detach/.exec(
        err instanceof Error ? err.message : '',
      );
      const pendingName = named?.[1];
      if (pendingName === undefined || !PARTITION_NAME.test(pendingName)) throw err;
      await finalize(pendingName);
      if (pendingName === name) return;
    }
  }
}

/** The names {@link partitionName} makes. */
const PARTITION_NAME = /^inference_log_batches_p\d+_s\d+$/;
/** PostgreSQL's `object_not_in_prerequisite_state`: among others, a partition pending detach. */
const OBJECT_NOT_IN_PREREQUISITE_STATE = '55000';
