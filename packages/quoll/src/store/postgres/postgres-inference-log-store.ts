import type { Worker } from 'node:worker_threads';
import { tableFromIPC } from 'apache-arrow';
import type { RecordBatch, Table } from 'apache-arrow';
import type { ApiError } from '../../errors/index.js';
import {
  LogHandOff,
  LogPageBuilder,
  logStoreClosedError,
  logStoreUnavailableError,
  planLogQuery,
  logQuarantineOf,
  printLogQuarantine,
} from '../../logs/index.js';
import type {
  InferenceLogs,
  InferenceLogStoreState,
  LogPage,
  LogRowSource,
  LogQuery,
  LogQueryPlan,
  LogQuarantine,
} from '../../logs/index.js';
import { systemClock } from '../../clock/index.js';
import { spawnModuleWorker } from '../../threads/index.js';
import type { PostgresDatabase } from './postgres-database.js';
import {
  RETENTION_LOCK_WAIT_MS,
  STORED_BATCH_MAX_BYTES,
  STORED_BATCH_MAX_ROWS,
  timerDelay,
} from './postgres-log-batch-writer.js';
import type {
  FromPostgresLogWriter,
  PostgresLogWriterSettings,
  ToPostgresLogWriter,
} from './postgres-log-writer-protocol.js';

/** Options of {@link PostgresInferenceLogStore}. */
export interface PostgresInferenceLogOptions {
  /** This node's id, recorded on every batch it stores. */
  nodeId: string;
  /** Rows the append queue holds before `append` makes callers wait. @default 500_000 */
  queueCapacityRows?: number;
  /**
   * Longest time appended rows wait on this thread before they are handed to the writer
   * thread, so that the appends of many requests cross in one message and are stored in one
   * transaction (as the embedded store's `handOffDelayMs`). A `flush()`, `stop()`, or a queue
   * holding `handOffRows` rows hands them over at once; `0` hands every append over as soon as
   * the writer is idle. Each hand-off costs a copy into a fresh arena, a wake-up of the writer
   * thread and one transaction of five round trips and a commit, so one per request (batch
   * 1000, one connection) took node / embedded infer from about 1.0 to 0.6–0.7 (issue 13).
   * @default 20
   */
  handOffDelayMs?: number;
  /** Rows queued that are handed to the writer at once, without waiting for `handOffDelayMs`. @default 8192 */
  handOffRows?: number;
  /** Retention: most batch bytes kept per pipeline (oldest go first). @default 1 GiB */
  maxBytesPerPipeline?: number;
  /** Retention: most batch bytes kept over all pipelines. @default 10 GiB */
  maxBytesTotal?: number;
  /**
   * Retention: longest the writer's retention pass waits for a lock another transaction
   * holds (the head of the pipeline holding the oldest batches, as another node's write does
   * for its duration) before it passes that pipeline over until a later pass; a pipeline's
   * own cap waits for no lock. The node's acknowledgements and its stop wait for the pass.
   * @default 1000
   */
  retentionLockWaitMs?: number;
  /**
   * Retention: a pass that left the total cap (or a pipeline's own cap) to a later pass —
   * another node held the total cap's lock, a head stayed held, or a step failed — is tried
   * again after this long without waiting for a write, the wait doubling up to
   * `maxRetentionRetryDelayMs` while passes keep leaving work due (back to this once none
   * does): a cluster gone quiet still comes down to its caps. Cancelled by `stop()`. Both
   * waits are held to 1 ms … 2^31−1 ms (about 24.8 days, setTimeout's longest).
   * @default 1000
   */
  retentionRetryDelayMs?: number;
  /** @default 60000 */
  maxRetentionRetryDelayMs?: number;
  /** First wait before a failed write (or a writer-thread crash) is retried; doubles up to `maxRetryDelayMs`. @default 100 */
  retryDelayMs?: number;
  /** @default 5000 */
  maxRetryDelayMs?: number;
  /** While writes fail, how long an append may wait for room before `log_store_unavailable`. @default 10000 */
  unavailableWaitMs?: number;
  /** Attempts after `stop()` while writes keep failing, before giving up. @default 3 */
  stopAttempts?: number;
  /** Told about every failed write (`retryInMs` null: given up at stop). @default stderr */
  onError?: (error: Error, retry: { attempt: number; retryInMs: number | null }) => void;
  /**
   * Told about rows the writer set aside because they cannot be stored by themselves (a batch
   * that cannot be merged, re-timed or encoded, or that PostgreSQL refuses as data): only those
   * are dropped, the writer goes on with every other row.
   * @default prints one line to stderr
   */
  onQuarantine?: (quarantine: LogQuarantine) => void;
  /** Told when the writer's vacuum after retention trims fails (nothing is lost: the rows are stored). @default stderr */
  onVacuumError?: (message: string) => void;
  /** Tests only: the statement the writer thread runs as its vacuum after trims. */
  vacuumStatement?: string;
  /** Epoch ms of this thread: when appends began waiting for room. (Stored batches carry the writer thread's system time.) @default Date.now */
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

/** A window of listed batches, and whether the log (in the query's order) ends within it. */
interface BatchWindow {
  metas: BatchMeta[];
  ended: boolean;
}

interface FlushWaiter {
  target: number;
  resolve: () => void;
  reject: (err: Error) => void;
}

/** Batches listed per round-trip while a page is read. */
const META_WINDOW = 32;

/**
 * The inference log of a node of a cluster, in PostgreSQL (migration 0013): every node's rows
 * in one sequence of Arrow record batches per pipeline, so any node answers `logs()` and
 * `exportLogs()` for rows written by any node, with the same paging, ordering, schema and byte
 * rules as an embedded home's segment files.
 *
 * `append` queues batches on the same bounded queue as the embedded store, and the same
 * hand-off moves them to a writer thread (`postgres-log-writer-worker.ts`) when it is idle,
 * at most `handOffDelayMs` (20 ms) after the first of them was queued (at once for a flush,
 * a stop, or `handOffRows` rows): one copy of the buffers into one transferred arena for the
 * appends of many requests. The thread, on a connection of its own,
 * merges small batches and stores everything it was given in one transaction, pipeline by
 * pipeline under each pipeline's head row (see `PostgresLogBatchWriter`), many batches per
 * `INSERT`. A failed write is retried with backoff (its rows stay with the thread); a crashed
 * thread is restarted and given again the rows it had not confirmed.
 */
export class PostgresInferenceLogStore implements InferenceLogs {
  readonly #db: PostgresDatabase;
  #quarantined = 0;
  readonly #opts: Required<Omit<PostgresInferenceLogOptions, 'nodeId' | 'vacuumStatement'>> & {
    nodeId: string;
  };
  readonly #settings: Omit<PostgresLogWriterSettings, 'confirmedSeq'>;
  /** The append queue, the hand-off timer, the packing, and what the writer has not confirmed. */
  readonly #handOff: LogHandOff;
  /** Schema messages by schema id, as read. */
  readonly #schemas = new Map<string, Buffer>();
  #worker: Worker | null = null;
  #writtenSeq = 0;
  /** Highest append seq the writer said is committed (its `ready`, the one {@link flush} waits for, may come later). */
  #committedSeq = 0;
  #flushWaiters: FlushWaiter[] = [];
  #state: Exclude<InferenceLogStoreState, 'retrying'> = 'open';
  #down: Error | null = null;
  #failure: Error | null = null;
  /** Unexpected ends of the writer thread since it last wrote, and how many came after stop(). */
  #crashes = 0;
  #crashesAtStop = 0;
  #refuseTimer: NodeJS.Timeout | null = null;
  #restartTimer: NodeJS.Timeout | null = null;
  readonly #done: Promise<void>;
  #finish: () => void = () => undefined;

  constructor(db: PostgresDatabase, options: PostgresInferenceLogOptions) {
    this.#db = db;
    this.#opts = {
      nodeId: options.nodeId,
      queueCapacityRows: options.queueCapacityRows ?? 500_000,
      handOffDelayMs: Math.max(0, options.handOffDelayMs ?? 20),
      handOffRows: options.handOffRows ?? 8192,
      maxBytesPerPipeline: options.maxBytesPerPipeline ?? 1024 ** 3,
      maxBytesTotal: options.maxBytesTotal ?? 10 * 1024 ** 3,
      retentionLockWaitMs: options.retentionLockWaitMs ?? RETENTION_LOCK_WAIT_MS,
      // Within setTimeout's range: a longer wait would fire after 1 ms (a failing pass retried in a loop).
      retentionRetryDelayMs: timerDelay(options.retentionRetryDelayMs ?? 1000),
      maxRetentionRetryDelayMs: timerDelay(options.maxRetentionRetryDelayMs ?? 60_000),
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
      onQuarantine: options.onQuarantine ?? printLogQuarantine,
      onVacuumError:
        options.onVacuumError ??
        ((message) => {
          process.stderr.write(
            `quoll: vacuuming the inference log table failed (its freed space waits for the next vacuum or autovacuum): ${message}\n`,
          );
        }),
      now: options.now ?? Date.now,
    };
    const o = this.#opts;
    this.#settings = {
      url: db.url,
      schema: db.schema,
      nodeId: o.nodeId,
      maxBytesPerPipeline: o.maxBytesPerPipeline,
      maxBytesTotal: o.maxBytesTotal,
      retentionLockWaitMs: o.retentionLockWaitMs,
      retentionRetryDelayMs: o.retentionRetryDelayMs,
      maxRetentionRetryDelayMs: o.maxRetentionRetryDelayMs,
      retryDelayMs: o.retryDelayMs,
      maxRetryDelayMs: o.maxRetryDelayMs,
      stopAttempts: o.stopAttempts,
      ...(options.vacuumStatement === undefined ? {} : { vacuumStatement: options.vacuumStatement }),
    };
    const now = o.now;
    this.#handOff = new LogHandOff({
      queueCapacityRows: o.queueCapacityRows,
      handOffDelayMs: o.handOffDelayMs,
      handOffRows: o.handOffRows,
      clock: {
        now,
        setTimeout: (fn, ms) => systemClock.setTimeout(fn, ms),
        clearTimeout: (handle) => systemClock.clearTimeout(handle),
      },
      // Merges a pipeline's small batches up to the size the writer stores them at (it merges no further).
      packer: { mergeMaxRows: STORED_BATCH_MAX_ROWS, mergeMaxBytes: STORED_BATCH_MAX_BYTES },
      closing: () => this.#state !== 'open',
      post: (msg, transfer) => this.#send(msg, transfer),
      lastSeqLowered: () => this.#lastSeqLowered(),
    });
    this.#done = new Promise((resolve) => (this.#finish = resolve));
    this.#start();
  }

  get state(): InferenceLogStoreState {
    return this.#state === 'open' && this.#down !== null ? 'retrying' : this.#state;
  }

  get lastError(): Error | null {
    return this.#down;
  }

  get queuedRows(): number {
    return this.#handOff.queue.queuedRows;
  }

  get refusedAppends(): number {
    return this.#handOff.refusedAppends;
  }

  /** The writer thread's id, `null` while none runs (being restarted, or stopped). */
  get writerThreadId(): number | null {
    return this.#worker?.threadId ?? null;
  }

  append(pipelineId: number, rows: Table | RecordBatch | LogRowSource): Promise<void> {
    if (this.#state !== 'open') return Promise.reject(this.#closedError());
    return this.#handOff.append(pipelineId, rows);
  }

  /** Resolves once every row appended so far (queued or waiting) is committed. */
  flush(): Promise<void> {
    if (this.#state === 'failed') return Promise.reject(this.#closedError());
    const target = this.#handOff.queue.lastSeq;
    if (this.#writtenSeq >= target) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.#flushWaiters.push({ target, resolve, reject });
      this.#handOff.hurry();
    });
  }

  /** Stops taking appends, stores everything queued (and waiting), and ends the writer thread. Safe to call twice. */
  async stop(): Promise<void> {
    if (this.#state === 'open') {
      this.#state = 'stopping';
      this.#send({ type: 'stop', lastSeq: this.#handOff.queue.lastSeq });
      this.#handOff.hurry();
      if (this.#restartTimer !== null) {
        // A writer thread waiting to be restarted: restart it now, to write what is left.
        clearTimeout(this.#restartTimer);
        this.#restartTimer = null;
        this.#start();
      }
    }
    await this.#done;
    this.#handOff.close();
    if (this.#refuseTimer !== null) clearTimeout(this.#refuseTimer);
    this.#refuseTimer = null;
    if (this.#state === 'stopping') this.#state = 'stopped';
  }

  /**
   * Ends the writer thread abruptly, as a crash would (for failure drills and tests): the
   * store reports it through `onError`, restarts the thread and gives it again every row it
   * had not confirmed committed.
   */
  async killWriterThread(): Promise<void> {
    const worker = this.#worker;
    if (worker === null) return;
    const exited = new Promise((resolve) => worker.once('exit', resolve));
    await worker.terminate();
    await exited;
  }

  /** Batches (or unreadable hand-offs) the writer set aside since the store opened. */
  get quarantinedBatches(): number {
    return this.#quarantined;
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

  // ---- the writer thread ---------------------------------------------------------------------

  /** Starts a writer thread and gives it what an earlier one left unconfirmed. */
  #start(): void {
    const worker = spawnModuleWorker(import.meta.url, 'postgres-log-writer-worker', {
      // A restarted thread counts what its predecessors committed as written: a stop waits for
      // no append seq below it (given nothing again, it would wait for them forever).
      workerData: { ...this.#settings, confirmedSeq: this.#writtenSeq } satisfies PostgresLogWriterSettings,
    });
    let error: Error | null = null;
    let stopped = false;
    worker.on('message', (msg: FromPostgresLogWriter) => {
      if (this.#worker !== worker) return;
      if (msg.type === 'stopped') stopped = true;
      this.#onMessage(msg);
    });
    worker.on('error', (err) => {
      error ??= err;
    });
    worker.once('exit', (code) => {
      if (this.#worker !== worker) return;
      this.#worker = null;
      this.#handOff.detach();
      // Rows it committed before dying (in the retention pass after a commit) are stored.
      this.#confirm(this.#committedSeq);
      if ((stopped && code === 0) || this.#state === 'failed') {
        this.#finish();
        return;
      }
      this.#crashed(
        new Error(
          `The inference log writer thread ended unexpectedly (exit code ${code})${error ? `: ${error.message}` : ''}.`,
          { cause: error ?? undefined },
        ),
      );
    });
    this.#worker = worker;
    this.#handOff.attach();
    if (this.#state === 'stopping') this.#send({ type: 'stop', lastSeq: this.#handOff.queue.lastSeq });
  }

  #send(msg: ToPostgresLogWriter, transfer: ArrayBuffer[] = []): void {
    this.#worker?.postMessage(msg, transfer);
  }

  #onMessage(msg: FromPostgresLogWriter): void {
    switch (msg.type) {
      case 'ready':
        this.#handOff.recycle(msg.arenas);
        this.#confirm(msg.writtenSeq);
        if (this.#down !== null && !this.#handOff.hasUnconfirmed) this.#recovered();
        this.#handOff.wantsRows();
        break;
      case 'committed':
        // Not given again to a restarted thread; flushes still wait for the retention pass (`ready`).
        this.#handOff.confirm(msg.writtenSeq);
        this.#committedSeq = Math.max(this.#committedSeq, msg.writtenSeq);
        break;
      case 'write-failed': {
        const error = new Error(msg.message);
        error.stack = msg.stack;
        this.#down = error;
        this.#opts.onError(error, { attempt: msg.attempt, retryInMs: msg.retryInMs });
        this.#armRefusal();
        break;
      }
      case 'recovered':
        this.#recovered();
        break;
      case 'vacuum-failed':
        this.#opts.onVacuumError(msg.message);
        break;
      case 'quarantined': {
        this.#quarantined++;
        this.#opts.onQuarantine(logQuarantineOf(msg));
        break;
      }
      case 'stopped':
        if (msg.failed) this.#fail(this.#down ?? new Error('the inference log writer failed at stop'));
        else this.#confirm(this.#handOff.queue.lastSeq);
        break;
    }
  }

  /**
   * Appends waiting for room were refused (or failed their copy), so the last seq may have gone
   * down. A flush or stop waiting for a seq above it would wait for an append that never comes:
   * every append still to be stored has a seq at most the queue's last, so theirs become that.
   */
  #lastSeqLowered(): void {
    const lastSeq = this.#handOff.queue.lastSeq;
    for (const w of this.#flushWaiters) w.target = Math.min(w.target, lastSeq);
    this.#releaseFlushes();
    if (this.#state === 'stopping') this.#send({ type: 'stop', lastSeq });
  }

  /** Drops the appends the writer confirmed committed up to `seq`, and releases flushes. */
  #confirm(seq: number): void {
    this.#handOff.confirm(seq);
    this.#writtenSeq = Math.max(this.#writtenSeq, seq);
    this.#releaseFlushes();
  }

  /** Resolves the flushes whose target is committed. */
  #releaseFlushes(): void {
    const still: FlushWaiter[] = [];
    for (const w of this.#flushWaiters) {
      if (w.target <= this.#writtenSeq) w.resolve();
      else still.push(w);
    }
    this.#flushWaiters = still;
  }

  #recovered(): void {
    this.#down = null;
    this.#crashes = 0;
    if (this.#refuseTimer !== null) clearTimeout(this.#refuseTimer);
    this.#refuseTimer = null;
  }

  #crashed(error: Error): void {
    this.#crashes++;
    const stopping = this.#state !== 'open';
    if (stopping && ++this.#crashesAtStop >= this.#opts.stopAttempts) {
      this.#opts.onError(error, { attempt: this.#crashes, retryInMs: null });
      this.#fail(error);
      this.#finish();
      return;
    }
    const delay = Math.min(this.#opts.maxRetryDelayMs, this.#opts.retryDelayMs * 2 ** (this.#crashes - 1));
    const wait = stopping ? Math.min(delay, this.#opts.retryDelayMs) : delay;
    this.#down = error;
    this.#opts.onError(error, { attempt: this.#crashes, retryInMs: wait });
    this.#armRefusal();
    this.#restartTimer = setTimeout(() => {
      this.#restartTimer = null;
      this.#start();
    }, wait);
  }

  /**
   * While the writer is down, refuses appends that waited for room longer than
   * `unavailableWaitMs`, so callers are not held indefinitely; runs until it is back.
   */
  #armRefusal(): void {
    if (this.#refuseTimer !== null) return;
    const bound = this.#opts.unavailableWaitMs;
    const tick = (): void => {
      this.#refuseTimer = null;
      if (this.#down === null || this.#state === 'failed') return;
      const queue = this.#handOff.queue;
      const refused = queue.refuseWaitingSince(this.#opts.now() - bound, this.#unavailableError());
      if (refused > 0) this.#lastSeqLowered();
      const oldest = queue.oldestWaitSince;
      const next = oldest === null ? bound : Math.max(1, oldest + bound - this.#opts.now());
      this.#refuseTimer = setTimeout(tick, next);
      this.#refuseTimer.unref();
    };
    tick();
  }

  #fail(err: Error): void {
    this.#failure = err;
    this.#state = 'failed';
    for (const w of this.#flushWaiters) w.reject(this.#closedError());
    this.#flushWaiters = [];
    this.#handOff.queue.failWaiters(this.#closedError());
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
   * and only the ones the page needs are fetched and decoded. The first window comes in one
   * round trip with the bytes of the batches the page will likely use (where the range starts
   * is found in the same statement); a further window, or a batch that estimate missed, costs
   * one more.
   */
  async query(pipelineId: number, q: LogQuery = {}): Promise<LogPage> {
    const p = planLogQuery(q);
    const asc = p.order === 'asc';
    const page = new LogPageBuilder(p);
    let { metas: window, ended: windowEnded } = await this.#firstWindow(pipelineId, p);
    while (window.length > 0) {
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
        // At least one batch, even with the byte budget spent (a page ended exactly at a batch's
        // end, or its first row was bigger than the cap): offered, it gives the page its cursor,
        // where an empty plan would end the paging with rows left.
        if (usable.length > 0 && (rowsPlanned >= page.rowsWanted || bytesPlanned >= page.bytesLeft)) break;
        usable.push(m);
        rowsPlanned += m.rows;
        bytesPlanned += m.bytes;
      }
      const lastUsed = usable.at(-1);
      const logEnded = usable.length === window.length && windowEnded;
      const next =
        rangeEnded || logEnded || lastUsed === undefined ? null : asc ? lastUsed.seq + 1 : lastUsed.seq - 1;
      const batches = await this.#decodeBatches(pipelineId, usable);
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
          // The window often says already whether a usable batch follows.
          const after = window[window.indexOf(m) + 1];
          page.full(
            i < usable.length - 1 ||
              (after !== undefined
                ? this.#inRange(after, p)
                : !windowEnded && (await this.#hasBatchAfter(pipelineId, m.seq, p))),
          );
        }
        return page.page();
      }
      if (next === null) break;
      ({ metas: window, ended: windowEnded } = await this.#listBatches(pipelineId, next, asc, META_WINDOW));
    }
    return page.page();
  }

  /** Whether a batch holds rows of the query's range (every batch does, unranged). */
  #inRange(m: BatchMeta, p: LogQueryPlan): boolean {
    return !p.ranged || (p.order === 'asc' ? m.min_time <= p.end : m.max_time >= p.start);
  }

  /**
   * The first window of a query: from its cursor's batch, from the pipeline's oldest or newest
   * batch (as its head says), or from where its range begins (found by index in the same
   * statement, which plans over every partition of the pipeline).
   */
  async #firstWindow(pipelineId: number, p: LogQueryPlan): Promise<BatchWindow> {
    const asc = p.order === 'asc';
    if (p.cursor !== null) return this.#listBatches(pipelineId, p.cursor.seq, asc, META_WINDOW);
    if (!p.ranged) {
      const head = await this.#db.one<{ first_seq: number; next_seq: number }>(
        'SELECT first_seq, next_seq FROM inference_log_heads WHERE pipeline_id = $1',
        [pipelineId],
      );
      if (head === null || head.next_seq <= head.first_seq) return { metas: [], ended: true };
      return this.#listBatches(pipelineId, asc ? head.first_seq : head.next_seq - 1, asc, META_WINDOW);
    }
    const start = asc
      ? `(SELECT seq FROM inference_log_batches WHERE pipeline_id = $1 AND max_time >= $3
           ORDER BY max_time, seq LIMIT 1)`
      : `(SELECT seq FROM inference_log_batches WHERE pipeline_id = $1 AND min_time <= $3
           ORDER BY min_time DESC, seq DESC LIMIT 1)`;
    const metas = await this.#db.rows<BatchMeta>(
      `SELECT seq, schema_id, rows, bytes, min_time, max_time FROM inference_log_batches
        WHERE pipeline_id = $1 AND seq ${asc ? '>=' : '<='} ${start}
        ORDER BY seq ${asc ? 'ASC' : 'DESC'} LIMIT $2`,
      [pipelineId, META_WINDOW, asc ? Math.ceil(p.start) : Math.floor(p.end)],
    );
    return { metas, ended: metas.length < META_WINDOW };
  }

  /**
   * Up to `limit` batches from seq `from` on in the query's order, and whether the log ends
   * within them. A pipeline's stored seqs are consecutive (retention takes the oldest), so the
   * window is the seqs `from` to `from ± limit`: the statement names them, and plans and locks
   * only the partitions that hold them. Ascending, a window retention emptied under the reader
   * (or a cursor older than the log) is read again without its far end, from the oldest batch
   * after `from`.
   */
  async #listBatches(pipelineId: number, from: number, asc: boolean, limit: number): Promise<BatchWindow> {
    const metas = await this.#db.rows<BatchMeta>(
      `SELECT seq, schema_id, rows, bytes, min_time, max_time FROM inference_log_batches
        WHERE pipeline_id = $1 AND seq ${asc ? '>= $2 AND seq < $4' : '<= $2 AND seq > $4'}
        ORDER BY seq ${asc ? 'ASC' : 'DESC'} LIMIT $3`,
      [pipelineId, from, limit, asc ? from + limit : from - limit],
    );
    // Descending, a short window reached the oldest batch.
    if (!asc) return { metas, ended: metas.length < limit };
    const last = metas.at(-1);
    if (last !== undefined) return { metas, ended: metas.length < limit && last.seq < from + limit - 1 };
    const after = await this.#db.rows<BatchMeta>(
      `SELECT seq, schema_id, rows, bytes, min_time, max_time FROM inference_log_batches
        WHERE pipeline_id = $1 AND seq >= $2 ORDER BY seq ASC LIMIT $3`,
      [pipelineId, from, limit],
    );
    return { metas: after, ended: after.length < limit };
  }

  /** Whether a batch the query could use follows `seq` in its order. */
  async #hasBatchAfter(pipelineId: number, seq: number, p: LogQueryPlan): Promise<boolean> {
    const asc = p.order === 'asc';
    const {
      metas: [m],
    } = await this.#listBatches(pipelineId, asc ? seq + 1 : seq - 1, asc, 1);
    return m !== undefined && this.#inRange(m, p);
  }

  /**
   * The listed batches, decoded, by seq (a batch deleted meanwhile is missing): one round trip
   * by primary key (the seqs of a window are contiguous).
   */
  async #decodeBatches(pipelineId: number, metas: readonly BatchMeta[]): Promise<Map<number, RecordBatch>> {
    const out = new Map<number, RecordBatch>();
    if (metas.length === 0) return out;
    const seqs = metas.map((m) => m.seq);
    const low = Math.min(...seqs);
    const rows = await this.#db.rows<{ seq: number; data: Buffer }>(
      `SELECT seq, data FROM inference_log_batches
        WHERE pipeline_id = $1 AND seq BETWEEN $2 AND $3`,
      [pipelineId, low, Math.max(...seqs)],
    );
    const bySeq = new Map(metas.map((m) => [m.seq, m]));
    for (const r of rows) {
      const m = bySeq.get(r.seq);
      if (m === undefined) continue;
      out.set(m.seq, decodeBatch(await this.#schemaMessage(m.schema_id), r.data));
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
