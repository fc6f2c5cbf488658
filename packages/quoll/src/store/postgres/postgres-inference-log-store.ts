import { tableFromIPC } from 'apache-arrow';
import type { RecordBatch, Table } from 'apache-arrow';
import type { ApiError } from '../../errors/index.js';
import {
  ArrowMessageEncoder,
  checkLogBatch,
  clampLogTime,
  coalesceLogBatches,
  COALESCE_BELOW_ROWS,
  COALESCE_MAX_BYTES,
  COALESCE_MAX_ROWS,
  LogAppendQueue,
  LogPageBuilder,
  logStoreClosedError,
  logStoreUnavailableError,
  admitLogRows,
  planLogQuery,
  schemaIdOf,
  timeValues,
} from '../../logs/index.js';
import type {
  InferenceLogs,
  InferenceLogStoreState,
  LogPage,
  LogQuery,
  LogQueryPlan,
  QueuedAppend,
} from '../../logs/index.js';
import type { PostgresDatabase, Sql } from './postgres-database.js';

/** Options of {@link PostgresInferenceLogStore}. */
export interface PostgresInferenceLogOptions {
  /** This node's id, recorded on every batch it stores. */
  nodeId: string;
  /** Rows the append queue holds before `append` makes callers wait. @default 500_000 */
  queueCapacityRows?: number;
  /** Retention: most batch bytes kept per pipeline (oldest go first). @default 1 GiB */
  maxBytesPerPipeline?: number;
  /** Retention: most batch bytes kept over all pipelines. @default 10 GiB */
  maxBytesTotal?: number;
  /** First wait before a failed write is retried; doubles up to `maxRetryDelayMs`. @default 100 */
  retryDelayMs?: number;
  /** @default 5000 */
  maxRetryDelayMs?: number;
  /** While writes fail, how long an append may wait for room before `log_store_unavailable`. @default 10000 */
  unavailableWaitMs?: number;
  /** Attempts after `stop()` while writes keep failing, before giving up. @default 3 */
  stopAttempts?: number;
  /** Told about every failed write (`retryInMs` null: given up at stop). @default stderr */
  onError?: (error: Error, retry: { attempt: number; retryInMs: number | null }) => void;
  /** Epoch ms stamped on stored batches. @default Date.now */
  now?: () => number;
}

/** A stored batch, without its bytes. */
interface BatchMeta {
  seq: number;
  schema_id: string;
  rows: number;
  bytes: number;
  min_time: number;
  max_time: number;
}

interface FlushWaiter {
  target: number;
  resolve: () => void;
  reject: (err: Error) => void;
}

/** Most rows of one stored batch (small input batches are merged up to it). */
const STORED_BATCH_MAX_ROWS = 4096;
/** Most column bytes of one stored batch. */
const STORED_BATCH_MAX_BYTES = 1024 * 1024;
/** Batches listed per round-trip while a page is read. */
const META_WINDOW = 32;
/** Longest Int64 time, as the "no rows yet" head. */
const NO_TIME = -(2n ** 63n);

/**
 * The inference log of a node of a cluster, in PostgreSQL (migration 0013): every node's rows
 * in one sequence of Arrow record batches per pipeline, so any node answers `logs()` and
 * `exportLogs()` for rows written by any node, with the same paging, ordering, schema and byte
 * rules as an embedded home's segment files.
 *
 * `append` queues batches (bounded, as the file store); one writer loop takes what has queued,
 * merges small batches, and stores each pipeline's share in one transaction that holds the
 * pipeline's head row: times below the newest stored time are raised to it (time is
 * non-decreasing along the log across nodes), and the batches get the next sequence numbers.
 * A failed write is retried with backoff; its rows stay queued.
 */
export class PostgresInferenceLogStore implements InferenceLogs {
  readonly #db: PostgresDatabase;
  readonly #opts: Required<Omit<PostgresInferenceLogOptions, 'nodeId'>> & { nodeId: string };
  readonly #queue: LogAppendQueue;
  readonly #encoder = new ArrowMessageEncoder();
  /** Schema messages by schema id, as read or written. */
  readonly #schemas = new Map<string, Buffer>();
  /** Schema ids whose row is committed (a rolled-back insert does not count). */
  readonly #storedSchemas = new Set<string>();
  readonly #backlog = new Map<number, RecordBatch[]>();
  #backlogSeq = 0;
  #writtenSeq = 0;
  #flushWaiters: FlushWaiter[] = [];
  #state: Exclude<InferenceLogStoreState, 'retrying'> = 'open';
  #down: Error | null = null;
  #failure: Error | null = null;
  #wakeRetry: (() => void) | null = null;
  #loop: Promise<void>;

  constructor(db: PostgresDatabase, options: PostgresInferenceLogOptions) {
    this.#db = db;
    this.#opts = {
      nodeId: options.nodeId,
      queueCapacityRows: options.queueCapacityRows ?? 500_000,
      maxBytesPerPipeline: options.maxBytesPerPipeline ?? 1024 ** 3,
      maxBytesTotal: options.maxBytesTotal ?? 10 * 1024 ** 3,
      retryDelayMs: options.retryDelayMs ?? 100,
      maxRetryDelayMs: options.maxRetryDelayMs ?? 5_000,
      unavailableWaitMs: options.unavailableWaitMs ?? 10_000,
      stopAttempts: options.stopAttempts ?? 3,
      onError:
        options.onError ??
        ((error, retry) => {
          process.stderr.write(
            retry.retryInMs === null
              ? `quoll: inference log writer gave up at stop after ${retry.attempt} failed attempts: ${error.message}\n`
              : `quoll: storing inference logs failed (attempt ${retry.attempt}, retrying in ${retry.retryInMs} ms; rows stay queued): ${error.message}\n`,
          );
        }),
      now: options.now ?? Date.now,
    };
    this.#queue = new LogAppendQueue(this.#opts.queueCapacityRows);
    this.#loop = this.#run();
  }

  get state(): InferenceLogStoreState {
    return this.#state === 'open' && this.#down !== null ? 'retrying' : this.#state;
  }

  get lastError(): Error | null {
    return this.#down;
  }

  get queuedRows(): number {
    return this.#queue.queuedRows;
  }

  append(pipelineId: number, rows: Table | RecordBatch): Promise<void> {
    if (this.#state !== 'open') return Promise.reject(this.#closedError());
    let admitted: { batches: RecordBatch[]; rows: number };
    try {
      admitted = admitLogRows(pipelineId, rows);
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    if (admitted.rows === 0) return Promise.resolve();
    return this.#queue.push(pipelineId, admitted.batches, admitted.rows, this.#opts.now());
  }

  flush(): Promise<void> {
    if (this.#state === 'failed') return Promise.reject(this.#closedError());
    const target = this.#queue.lastSeq;
    if (this.#writtenSeq >= target) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.#flushWaiters.push({ target, resolve, reject });
      this.#queue.wake();
    });
  }

  async stop(): Promise<void> {
    if (this.#state === 'open') this.#state = 'stopping';
    this.#queue.wake();
    this.#wakeRetry?.();
    await this.#loop;
    if (this.#state === 'stopping') this.#state = 'stopped';
  }

  async storedBytes(pipelineId?: number): Promise<number> {
    const row =
      pipelineId === undefined
        ? await this.#db.one<{ bytes: number | null }>('SELECT sum(bytes) AS bytes FROM inference_log_heads')
        : await this.#db.one<{ bytes: number | null }>(
            'SELECT bytes FROM inference_log_heads WHERE pipeline_id = $1',
            [pipelineId],
          );
    return row?.bytes ?? 0;
  }

  /**
   * Stores batches now, inside the caller's transaction, bypassing the queue (for `quoll admin
   * migrate`, which copies a whole log in one transaction). Returns the rows stored.
   */
  async storeBatchesIn(sql: Sql, pipelineId: number, batches: readonly RecordBatch[]): Promise<number> {
    for (const b of batches) checkLogBatch(b);
    await this.#writePipeline(sql, pipelineId, [...batches]);
    return batches.reduce((sum, b) => sum + b.numRows, 0);
  }

  // ---- writing -------------------------------------------------------------------------------

  async #run(): Promise<void> {
    let failures = 0;
    let stopFailures = 0;
    for (;;) {
      try {
        if (this.#queue.hasItems) this.#take(this.#queue.takeAll());
        if (this.#backlog.size > 0) {
          await this.#writeBacklog();
          this.#down = null;
          failures = 0;
        }
        this.#writtenSeq = this.#backlogSeq;
        this.#releaseFlushes();
        if (this.#queue.hasItems) continue;
        if (this.#state !== 'open' && this.#queue.idle) return;
        await this.#queue.whenItems();
      } catch (err) {
        const error = err instanceof Error ? err : new Error(String(err));
        this.#down = error;
        failures++;
        if (this.#state !== 'open' && ++stopFailures >= this.#opts.stopAttempts) {
          this.#opts.onError(error, { attempt: failures, retryInMs: null });
          this.#fail(error);
          return;
        }
        const delay = Math.min(this.#opts.maxRetryDelayMs, this.#opts.retryDelayMs * 2 ** (failures - 1));
        this.#opts.onError(error, { attempt: failures, retryInMs: delay });
        await this.#waitToRetry(this.#state === 'open' ? delay : Math.min(delay, this.#opts.retryDelayMs));
      }
    }
  }

  #take(items: QueuedAppend[]): void {
    for (const item of items) {
      const list = this.#backlog.get(item.pipelineId);
      if (list === undefined) this.#backlog.set(item.pipelineId, [...item.batches]);
      else for (const b of item.batches) list.push(b);
    }
    this.#backlogSeq = items.at(-1)?.seq ?? this.#backlogSeq;
  }

  /** Each pipeline's backlog in a transaction of its own; a pipeline leaves the backlog once committed. */
  async #writeBacklog(): Promise<void> {
    for (const [pipelineId, batches] of this.#backlog) {
      await this.#writeCommitted(pipelineId, batches);
      this.#backlog.delete(pipelineId);
    }
    await this.#enforceTotalRetention();
  }

  /** One pipeline's batches in one transaction; the schemas it stored count once it commits. */
  async #writeCommitted(pipelineId: number, batches: RecordBatch[]): Promise<void> {
    const schemas = await this.#db.transaction((sql) => this.#writePipeline(sql, pipelineId, batches));
    for (const id of schemas) this.#storedSchemas.add(id);
  }

  /**
   * Stores one pipeline's batches under its head row, then applies the pipeline's byte cap.
   * Returns the schema ids it inserted.
   */
  async #writePipeline(sql: Sql, pipelineId: number, batches: RecordBatch[]): Promise<string[]> {
    const schemas: string[] = [];
    await sql.run(
      'INSERT INTO inference_log_heads (pipeline_id, next_seq) VALUES ($1, 1) ON CONFLICT (pipeline_id) DO NOTHING',
      [pipelineId],
    );
    const head = await sql.one<{ next_seq: number; last_time: string | null }>(
      'SELECT next_seq, last_time::text AS last_time FROM inference_log_heads WHERE pipeline_id = $1 FOR UPDATE',
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
      batches,
      COALESCE_BELOW_ROWS,
      Math.min(COALESCE_MAX_ROWS, STORED_BATCH_MAX_ROWS),
      Math.min(COALESCE_MAX_BYTES, STORED_BATCH_MAX_BYTES),
    );
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
      await sql.run(
        `INSERT INTO inference_log_batches
           (pipeline_id, seq, schema_id, rows, bytes, min_time, max_time, node_id, created_at, data)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
        [
          pipelineId,
          seq++,
          schemaId,
          batch.numRows,
          msg.bytes,
          String(t[0]),
          String(last),
          this.#opts.nodeId,
          this.#opts.now(),
          Buffer.concat(msg.chunks, msg.bytes),
        ],
      );
      rows += batch.numRows;
      bytes += msg.bytes;
    }
    const updated = await sql.one<{ bytes: number }>(
      `UPDATE inference_log_heads SET next_seq = $2, last_time = $3, rows = rows + $4, bytes = bytes + $5
       WHERE pipeline_id = $1 RETURNING bytes`,
      [pipelineId, seq, lastTime === NO_TIME ? null : String(lastTime), rows, bytes],
    );
    if ((updated?.bytes ?? 0) > this.#opts.maxBytesPerPipeline) {
      await this.#trim(sql, pipelineId, (updated?.bytes ?? 0) - this.#opts.maxBytesPerPipeline);
    }
    return schemas;
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

  /** Over the total cap: the pipelines holding the oldest batches give them up first. */
  async #enforceTotalRetention(): Promise<void> {
    for (;;) {
      const total = await this.storedBytes();
      if (total <= this.#opts.maxBytesTotal) return;
      const oldest = await this.#db.one<{ pipeline_id: number }>(
        `SELECT b.pipeline_id FROM inference_log_batches b JOIN inference_log_heads h USING (pipeline_id)
          WHERE b.seq < h.next_seq - 1 ORDER BY b.created_at LIMIT 1`,
      );
      if (oldest === null) return;
      await this.#db.transaction(async (sql) => {
        const head = await sql.one<{ next_seq: number }>(
          'SELECT next_seq FROM inference_log_heads WHERE pipeline_id = $1 FOR UPDATE',
          [oldest.pipeline_id],
        );
        if (head !== null) await this.#trim(sql, oldest.pipeline_id, total - this.#opts.maxBytesTotal);
      });
    }
  }

  async #waitToRetry(delay: number): Promise<void> {
    this.#queue.refuseWaitingSince(this.#opts.now() - this.#opts.unavailableWaitMs, this.#unavailableError());
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.#wakeRetry = null;
        resolve();
      }, delay);
      this.#wakeRetry = () => {
        clearTimeout(timer);
        this.#wakeRetry = null;
        resolve();
      };
    });
    this.#queue.refuseWaitingSince(this.#opts.now() - this.#opts.unavailableWaitMs, this.#unavailableError());
  }

  #releaseFlushes(): void {
    const still: FlushWaiter[] = [];
    for (const w of this.#flushWaiters) {
      if (w.target <= this.#writtenSeq) w.resolve();
      else still.push(w);
    }
    this.#flushWaiters = still;
  }

  #fail(err: Error): void {
    this.#failure = err;
    this.#state = 'failed';
    for (const w of this.#flushWaiters) w.reject(this.#closedError());
    this.#flushWaiters = [];
    this.#queue.failWaiters(this.#closedError());
  }

  #closedError(): ApiError {
    return logStoreClosedError(this.#state === 'failed' ? (this.#failure ?? new Error('unknown')) : null);
  }

  #unavailableError(): ApiError {
    return logStoreUnavailableError(this.#down, this.#opts.unavailableWaitMs, this.state);
  }

  // ---- reading -------------------------------------------------------------------------------

  /**
   * One page of a pipeline's log, by the rules of `queryLogPage` (the embedded store's): the
   * batches are listed a window at a time along `seq` from where the range (or cursor) starts,
   * and only the ones the page needs are fetched and decoded.
   */
  async query(pipelineId: number, q: LogQuery = {}): Promise<LogPage> {
    const p = planLogQuery(q);
    const asc = p.order === 'asc';
    const page = new LogPageBuilder(p);
    let from = await this.#firstSeq(pipelineId, p);
    while (from !== null) {
      const window = await this.#listBatches(pipelineId, from, asc, META_WINDOW);
      if (window.length === 0) break;
      // Only the batches the page can still use: none past the range's far end, and no more
      // than the rows and bytes left (the next window starts after the last one used).
      const usable: BatchMeta[] = [];
      let rangeEnded = false;
      let rowsPlanned = 0;
      let bytesPlanned = 0;
      for (const m of window) {
        if (p.ranged && (asc ? m.min_time > p.end : m.max_time < p.start)) {
          rangeEnded = true;
          break;
        }
        if (rowsPlanned >= page.rowsWanted || bytesPlanned >= page.bytesLeft) break;
        usable.push(m);
        rowsPlanned += m.rows;
        bytesPlanned += m.bytes;
      }
      const lastUsed = usable.at(-1);
      const logEnded = usable.length === window.length && window.length < META_WINDOW;
      from =
        rangeEnded || logEnded || lastUsed === undefined ? null : asc ? lastUsed.seq + 1 : lastUsed.seq - 1;
      const batches = await this.#fetchBatches(pipelineId, usable);
      for (let i = 0; i < usable.length; i++) {
        const m = usable[i] as BatchMeta;
        const batch = batches.get(m.seq);
        // Retention removed it under the reader: its rows are gone, move on.
        if (batch === undefined) continue;
        const c = p.cursor;
        const result = page.offer(
          batch,
          {
            seq: m.seq,
            rowStart: 0,
            schemaId: m.schema_id,
            firstTime: m.min_time,
            lastTime: m.max_time,
            bytes: m.bytes,
          },
          c !== null && asc && m.seq === c.seq ? c.row : 0,
          c !== null && !asc && m.seq === c.seq ? c.row : batch.numRows - 1,
        );
        if (result === 'next') continue;
        if (result === 'full') {
          page.full(i < usable.length - 1 || (await this.#hasBatchAfter(pipelineId, m.seq, p)));
        }
        return page.page();
      }
    }
    return page.page();
  }

  /** The seq a query starts at (its cursor's, or where the range begins), or null when none. */
  async #firstSeq(pipelineId: number, p: LogQueryPlan): Promise<number | null> {
    if (p.cursor !== null) return p.cursor.seq;
    const asc = p.order === 'asc';
    if (!p.ranged) return asc ? 0 : Number.MAX_SAFE_INTEGER;
    const row = asc
      ? await this.#db.one<{ seq: number }>(
          `SELECT seq FROM inference_log_batches WHERE pipeline_id = $1 AND max_time >= $2
            ORDER BY max_time, seq LIMIT 1`,
          [pipelineId, Math.ceil(p.start)],
        )
      : await this.#db.one<{ seq: number }>(
          `SELECT seq FROM inference_log_batches WHERE pipeline_id = $1 AND min_time <= $2
            ORDER BY min_time DESC, seq DESC LIMIT 1`,
          [pipelineId, Math.floor(p.end)],
        );
    return row?.seq ?? null;
  }

  #listBatches(pipelineId: number, from: number, asc: boolean, limit: number): Promise<BatchMeta[]> {
    return this.#db.rows<BatchMeta>(
      `SELECT seq, schema_id, rows, bytes, min_time, max_time FROM inference_log_batches
        WHERE pipeline_id = $1 AND seq ${asc ? '>=' : '<='} $2 ORDER BY seq ${asc ? 'ASC' : 'DESC'} LIMIT $3`,
      [pipelineId, from, limit],
    );
  }

  /** Whether a batch the query could use follows `seq` in its order. */
  async #hasBatchAfter(pipelineId: number, seq: number, p: LogQueryPlan): Promise<boolean> {
    const asc = p.order === 'asc';
    const [m] = await this.#listBatches(pipelineId, asc ? seq + 1 : seq - 1, asc, 1);
    if (m === undefined) return false;
    return !p.ranged || (asc ? m.min_time <= p.end : m.max_time >= p.start);
  }

  /** The listed batches, decoded, by seq (a batch deleted meanwhile is missing). */
  async #fetchBatches(pipelineId: number, metas: readonly BatchMeta[]): Promise<Map<number, RecordBatch>> {
    const out = new Map<number, RecordBatch>();
    if (metas.length === 0) return out;
    const rows = await this.#db.rows<{ seq: number; schema_id: string; data: Buffer }>(
      'SELECT seq, schema_id, data FROM inference_log_batches WHERE pipeline_id = $1 AND seq = ANY($2::bigint[])',
      [pipelineId, metas.map((m) => m.seq)],
    );
    for (const r of rows) {
      const schema = await this.#schemaMessage(r.schema_id);
      out.set(r.seq, decodeBatch(schema, r.data));
    }
    return out;
  }

  async #schemaMessage(schemaId: string): Promise<Buffer> {
    let message = this.#schemas.get(schemaId);
    if (message === undefined) {
      const row = await this.#db.one<{ message: Buffer }>(
        'SELECT message FROM inference_log_schemas WHERE schema_id = $1',
        [schemaId],
      );
      if (row === null) throw new Error(`inference log schema ${schemaId} is not stored`);
      message = row.message;
      this.#schemas.set(schemaId, message);
    }
    return message;
  }
}

/** One record batch from its schema message and its batch message (an Arrow IPC stream of one batch). */
export function decodeBatch(schemaMessage: Uint8Array, batchMessage: Uint8Array): RecordBatch {
  const batch = tableFromIPC(Buffer.concat([schemaMessage, batchMessage])).batches[0];
  if (batch === undefined) throw new Error('a stored inference log batch holds no rows');
  return batch;
}
