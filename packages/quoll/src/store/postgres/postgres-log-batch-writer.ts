import type { RecordBatch } from 'apache-arrow';
import {
  ArrowMessageEncoder,
  clampLogTime,
  coalesceLogBatches,
  COALESCE_BELOW_ROWS,
  COALESCE_MAX_BYTES,
  COALESCE_MAX_ROWS,
  schemaIdOf,
  timeValues,
} from '../../logs/index.js';
import type { Sql } from './postgres-database.js';

/** Most rows of one stored batch (small input batches are merged up to it). */
export const STORED_BATCH_MAX_ROWS = 1024;
/** Most column bytes of one stored batch. */
export const STORED_BATCH_MAX_BYTES = 1024 * 1024;
/** Most stored batches one `INSERT` carries (10 parameters each). */
const INSERT_MAX_BATCHES = 64;
/** Most batch bytes one `INSERT` carries. */
const INSERT_MAX_BYTES = 16 * 1024 * 1024;
/**
 * Most bytes of the buffer the stored batches' bytes are copied into, kept from one write to
 * the next (a transaction holding more copies the rest into buffers of their own).
 */
const SLAB_MAX_BYTES = 8 * 1024 * 1024;
/** Longest Int64 time, as the "no rows yet" head. */
const NO_TIME = -(2n ** 63n);

/** Retention caps, in batch bytes. */
export interface LogRetentionCaps {
  maxBytesPerPipeline: number;
  maxBytesTotal: number;
}

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
   * The batches' bytes as the `pg` driver takes them (one `Buffer` per value), copied into one
   * buffer reused by every write: a fresh 88 kB `Buffer` per batch is memory outside V8's heap
   * that V8 counts towards its next full collection (a node's writer thread under load ran 11–12
   * of them per ~700 requests, 1–5 with this). Reused only once the write's statements have all
   * settled (the driver has copied their values into its own message by then).
   */
  #slab = Buffer.alloc(0);
  #slabUsed = 0;
  /** Schema ids whose row is committed (a rolled-back insert does not count). */
  readonly #storedSchemas = new Set<string>();
  /** Whether a write since the last {@link enforceTotalRetention} may have passed the total cap. */
  #overTotal = true;

  constructor(nodeId: string, caps: LogRetentionCaps, now: () => number = Date.now) {
    this.#nodeId = nodeId;
    this.#caps = caps;
    this.#now = now;
  }

  /** Counts schemas as stored once the transaction that inserted them has committed. */
  committed(schemaIds: readonly string[]): void {
    for (const id of schemaIds) this.#storedSchemas.add(id);
  }

  /**
   * Stores one pipeline's batches in the caller's transaction, then applies the pipeline's
   * byte cap. Returns the schema ids it inserted (pass them to {@link committed} after commit).
   * Several pipelines in one transaction must come in ascending id order (heads are locked in
   * that order, so two nodes never deadlock).
   */
  async write(sql: Sql, pipelineId: number, batches: readonly RecordBatch[]): Promise<string[]> {
    this.#slabUsed = 0;
    // One statement is in flight while the next batches are encoded: the driver queues it
    // behind the one executing, and this waits for the older one before sending a third.
    const flight: { last: Promise<number> | null } = { last: null };
    try {
      return await this.#write(sql, pipelineId, batches, flight);
    } catch (err) {
      // The slab's bytes may still be waiting in the driver's queue: the next write reuses it.
      await flight.last?.catch(() => undefined);
      throw err;
    }
  }

  async #write(
    sql: Sql,
    pipelineId: number,
    batches: readonly RecordBatch[],
    flight: { last: Promise<number> | null },
  ): Promise<string[]> {
    const schemas: string[] = [];
    // One round trip creates the head if missing and locks it (the no-op update takes the lock).
    const head = await sql.one<{ next_seq: number; last_time: string | null }>(
      `INSERT INTO inference_log_heads AS h (pipeline_id, next_seq) VALUES ($1, 1)
       ON CONFLICT (pipeline_id) DO UPDATE SET next_seq = h.next_seq
       RETURNING next_seq, last_time::text AS last_time`,
      [pipelineId],
    );
    if (head === null) throw new Error(`inference log head of pipeline ${pipelineId} vanished`);
    let seq = head.next_seq;
    let lastTime = head.last_time === null ? NO_TIME : BigInt(head.last_time);
    let rows = 0;
    let bytes = 0;
    // Stored batches stay small: a page fetches and decodes whole batches, so a 1000-row page
    // should not pull a 16k-row one.
    const merged = coalesceLogBatches(
      [...batches],
      COALESCE_BELOW_ROWS,
      Math.min(COALESCE_MAX_ROWS, STORED_BATCH_MAX_ROWS),
      Math.min(COALESCE_MAX_BYTES, STORED_BATCH_MAX_BYTES),
    );
    const createdAt = this.#now();
    let values: unknown[] = [];
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
      const sent = sql.run(
        `INSERT INTO inference_log_batches
           (pipeline_id, seq, schema_id, rows, bytes, min_time, max_time, node_id, created_at, data)
         VALUES ${tuples.join(', ')}`,
        values,
      );
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
      const { batch, last } = clampLogTime(original, lastTime);
      lastTime = last;
      const schemaId = schemaIdOf(batch.schema);
      if (!this.#storedSchemas.has(schemaId) && !schemas.includes(schemaId)) {
        const message = Buffer.concat(this.#encoder.encodeSchema(batch.schema).chunks);
        await sql.run(
          'INSERT INTO inference_log_schemas (schema_id, message) VALUES ($1, $2) ON CONFLICT (schema_id) DO NOTHING',
          [schemaId, message],
        );
        schemas.push(schemaId);
      }
      const msg = this.#encoder.encodeBatch(batch);
      const t = timeValues(batch);
      values.push(
        pipelineId,
        seq++,
        schemaId,
        batch.numRows,
        msg.bytes,
        String(t[0]),
        String(last),
        this.#nodeId,
        createdAt,
        this.#copy(msg.chunks, msg.bytes),
      );
      pending++;
      pendingBytes += msg.bytes;
      rows += batch.numRows;
      bytes += msg.bytes;
      if (pending >= INSERT_MAX_BATCHES || pendingBytes >= INSERT_MAX_BYTES) await insert();
    }
    await insert();
    await flight.last;
    // The total over all pipelines comes in the same round trip, so that the total cap costs
    // a statement of its own only when it may be passed. The subquery reads the statement's
    // snapshot (this head before the update), hence `+ $5`.
    const updated = await sql.one<{ bytes: number; total: number }>(
      `UPDATE inference_log_heads SET next_seq = $2, last_time = $3, rows = rows + $4, bytes = bytes + $5
       WHERE pipeline_id = $1
       RETURNING bytes, (SELECT coalesce(sum(bytes), 0) FROM inference_log_heads) + $5 AS total`,
      [pipelineId, seq, lastTime === NO_TIME ? null : String(lastTime), rows, bytes],
    );
    if ((updated?.total ?? 0) > this.#caps.maxBytesTotal) this.#overTotal = true;
    if ((updated?.bytes ?? 0) > this.#caps.maxBytesPerPipeline) {
      await this.#trim(sql, pipelineId, (updated?.bytes ?? 0) - this.#caps.maxBytesPerPipeline);
    }
    return schemas;
  }

  /** One stored batch's bytes as one `Buffer`, in the slab while it has room. */
  #copy(chunks: readonly Uint8Array[], bytes: number): Buffer {
    if (this.#slab.length - this.#slabUsed < bytes) {
      if (this.#slabUsed + bytes > SLAB_MAX_BYTES) return Buffer.concat(chunks, bytes);
      // Bytes already copied keep the old slab alive until their statement has been sent.
      this.#slab = Buffer.allocUnsafeSlow(
        Math.min(SLAB_MAX_BYTES, Math.max(1024 * 1024, 2 * (this.#slabUsed + bytes))),
      );
      this.#slabUsed = 0;
    }
    const out = this.#slab.subarray(this.#slabUsed, this.#slabUsed + bytes);
    let offset = 0;
    for (const chunk of chunks) {
      out.set(chunk, offset);
      offset += chunk.byteLength;
    }
    this.#slabUsed += bytes;
    return out;
  }

  /**
   * Over the total cap: the pipelines holding the oldest batches give them up first, each
   * step in a transaction of its own (`transaction` runs one). Reads the total only when a
   * write since the last call (or the first call) may have passed the cap: every write reads
   * the total of all nodes' pipelines, so rows another node stored count at this node's next
   * write, and that node checks after its own.
   */
  async enforceTotalRetention(
    sql: Sql,
    transaction: (fn: (tx: Sql) => Promise<void>) => Promise<void>,
  ): Promise<void> {
    if (!this.#overTotal) return;
    this.#overTotal = false;
    for (;;) {
      const row = await sql.one<{ bytes: number | null }>(
        'SELECT sum(bytes) AS bytes FROM inference_log_heads',
      );
      const total = row?.bytes ?? 0;
      if (total <= this.#caps.maxBytesTotal) return;
      const oldest = await sql.one<{ pipeline_id: number }>(
        `SELECT b.pipeline_id FROM inference_log_batches b JOIN inference_log_heads h USING (pipeline_id)
          WHERE b.seq < h.next_seq - 1 ORDER BY b.created_at LIMIT 1`,
      );
      if (oldest === null) return;
      await transaction(async (tx) => {
        const head = await tx.one<{ next_seq: number }>(
          'SELECT next_seq FROM inference_log_heads WHERE pipeline_id = $1 FOR UPDATE',
          [oldest.pipeline_id],
        );
        if (head !== null) await this.#trim(tx, oldest.pipeline_id, total - this.#caps.maxBytesTotal);
      });
    }
  }

  /**
   * Deletes a pipeline's oldest batches until at least `excess` bytes are gone, keeping its
   * newest batch. The caller holds the pipeline's head row.
   */
  async #trim(sql: Sql, pipelineId: number, excess: number): Promise<void> {
    const cut = await sql.one<{ seq: number | null; rows: number | null; bytes: number | null }>(
      `WITH oldest AS (
         SELECT seq, rows, bytes, sum(bytes) OVER (ORDER BY seq) AS running
           FROM inference_log_batches
          WHERE pipeline_id = $1 AND seq < (SELECT next_seq - 1 FROM inference_log_heads WHERE pipeline_id = $1)
          ORDER BY seq)
       SELECT max(seq) AS seq, sum(rows) AS rows, sum(bytes) AS bytes
         FROM oldest WHERE running - bytes < $2`,
      [pipelineId, excess],
    );
    if (cut?.seq === null || cut?.seq === undefined) return;
    await sql.run('DELETE FROM inference_log_batches WHERE pipeline_id = $1 AND seq <= $2', [
      pipelineId,
      cut.seq,
    ]);
    await sql.run(
      'UPDATE inference_log_heads SET rows = rows - $2, bytes = bytes - $3 WHERE pipeline_id = $1',
      [pipelineId, cut.rows ?? 0, cut.bytes ?? 0],
    );
  }
}
