import { mkdir, truncate } from 'node:fs/promises';
import { Data, DataType, RecordBatch, Table, TimeUnit, makeData } from 'apache-arrow';
import { systemClock } from '../clock/index.js';
import type { Clock, TimerHandle } from '../clock/index.js';
import { ApiError } from '../server/api-error.js';
import { ArrowMessageEncoder } from './arrow-message-encoder.js';
import {
  COALESCE_BELOW_ROWS,
  COALESCE_MAX_BYTES,
  COALESCE_MAX_ROWS,
  coalesceLogBatches,
} from './coalesce-log-batches.js';
import { LogAppendQueue } from './log-append-queue.js';
import type { QueuedAppend } from './log-append-queue.js';
import { enforceLogRetention, removeOrphanSegmentFiles } from './log-segment-files.js';
import type { LogFilesContext } from './log-segment-files.js';
import type { LogSegmentIndex, LogSegmentUpdate } from './log-segment-index.js';
import { OpenSegment } from './open-segment.js';
import { queryLogPage } from './query-log-page.js';
import type { LogPage, LogQuery } from './query-log-page.js';
import { recoverLogSegments } from './recover-log-segments.js';
import type { LogRecoveryReport } from './recover-log-segments.js';
import { schemaIdOf } from './schema-id.js';
import { segmentPath, sidecarPath, timeValues } from './segment-file.js';
import { SegmentReadCache } from './segment-read-cache.js';

/** Options of {@link InferenceLogStore.open}. */
export interface InferenceLogStoreOptions {
  /** Root directory of the segment files: `<dir>/<pipelineId>/<seq>.arrows` (created if missing). */
  dir: string;
  /** Where segments are indexed (e.g. `SqliteLogSegmentIndex`). */
  index: LogSegmentIndex;
  /**
   * Time source for segment creation times and the sync timer.
   * @default systemClock
   */
  clock?: Clock;
  /**
   * Rows the append queue holds before `append` makes callers wait.
   * @default 500_000
   */
  queueCapacityRows?: number;
  /**
   * Longest time written rows wait for an fsync (and the index update that makes them
   * count as flushed). Rows reach the OS, and so survive a process crash, as soon as the
   * writer takes them; this bounds what a power loss can take.
   * @default 200
   */
  syncIntervalMs?: number;
  /**
   * A segment takes no more batches once it holds this many rows.
   * @default 1_000_000
   */
  segmentMaxRows?: number;
  /**
   * A segment takes no more batches once it is this big.
   * @default 67_108_864 (64 MiB)
   */
  segmentMaxBytes?: number;
  /**
   * Retention: most segment bytes kept per pipeline (oldest sealed segments go first).
   * @default 1_073_741_824 (1 GiB)
   */
  maxBytesPerPipeline?: number;
  /**
   * Retention: most segment bytes kept over all pipelines.
   * @default 10_737_418_240 (10 GiB)
   */
  maxBytesTotal?: number;
  /**
   * First wait before the writer retries after a write failure; it doubles with every failed
   * attempt, up to `maxRetryDelayMs`.
   * @default 100
   */
  retryDelayMs?: number;
  /**
   * Longest wait between two attempts of a failing writer.
   * @default 5000
   */
  maxRetryDelayMs?: number;
  /**
   * While the writer is failing, how long an append may wait for room in the full queue
   * before it is refused with `log_store_unavailable` (rows that fit are queued and kept).
   * @default 10000
   */
  unavailableWaitMs?: number;
  /**
   * Attempts the writer makes after `stop()` while writes keep failing; then it gives up and
   * reports the rows it could not write.
   * @default 3
   */
  stopAttempts?: number;
  /**
   * Told about every failed write attempt: `retryInMs` is when the writer tries again, `null`
   * when it gives up (only during `stop()`).
   * @default prints to stderr
   */
  onError?: (error: Error, retry: { attempt: number; retryInMs: number | null }) => void;
}

/**
 * The writer's state: `open` takes appends; `retrying` after a write failure (appends are
 * still queued, the writer retries with backoff and returns to `open` once a write succeeds);
 * after `stop()` it is `stopped`, or `failed` when writes still failed at stop.
 */
export type InferenceLogStoreState = 'open' | 'retrying' | 'stopping' | 'stopped' | 'failed';

interface PipelineWriteState {
  nextSeq: number;
  /** Latest `time` written, epoch ms as Int64. */
  lastTime: bigint;
  open: OpenSegment | null;
}

interface FlushWaiter {
  target: number;
  resolve: () => void;
  reject: (err: Error) => void;
}

const DEFAULTS = {
  clock: systemClock,
  queueCapacityRows: 500_000,
  syncIntervalMs: 200,
  segmentMaxRows: 1_000_000,
  segmentMaxBytes: 64 * 1024 * 1024,
  maxBytesPerPipeline: 1024 ** 3,
  maxBytesTotal: 10 * 1024 ** 3,
  retryDelayMs: 100,
  maxRetryDelayMs: 5_000,
  unavailableWaitMs: 10_000,
  stopAttempts: 3,
  onError: (error: Error, retry: { attempt: number; retryInMs: number | null }) => {
    process.stderr.write(
      retry.retryInMs === null
        ? `quoll: inference log writer gave up at stop after ${retry.attempt} failed attempts: ${error.stack ?? error.message}\n`
        : `quoll: inference log write failed (attempt ${retry.attempt}, retrying in ${retry.retryInMs} ms; rows stay queued): ${error.message}\n`,
    );
  },
} as const;

/**
 * Returns the batch with its `time` column made non-decreasing and not below `after`
 * (each value raised to the running maximum), or the batch itself when it already is.
 * Queries binary-search on time, so the order must hold along the whole pipeline.
 */
function clampTime(batch: RecordBatch, after: bigint): { batch: RecordBatch; last: bigint } {
  const t = timeValues(batch);
  let prev = after;
  let ok = true;
  for (let i = 0; i < t.length; i++) {
    const v = t[i] as bigint;
    if (v < prev) {
      ok = false;
      break;
    }
    prev = v;
  }
  if (ok) return { batch, last: prev };
  const fixed = new BigInt64Array(t.length);
  prev = after;
  for (let i = 0; i < t.length; i++) {
    const v = t[i] as bigint;
    prev = v > prev ? v : prev;
    fixed[i] = prev;
  }
  const col = batch.schema.fields.findIndex((f) => f.name === 'time');
  const old = batch.data.children[col] as Data;
  const children = batch.data.children.slice();
  children[col] = new Data(old.type, 0, t.length, 0, [undefined, fixed]);
  return {
    batch: new RecordBatch(
      batch.schema,
      makeData({ type: batch.data.type, length: batch.numRows, nullCount: 0, children }),
    ),
    last: prev,
  };
}

/** Checks that a batch can be logged; throws `ApiError('invalid_request')` naming what is wrong. */
function checkBatch(batch: RecordBatch): void {
  const field = batch.schema.fields.find((f) => f.name === 'time');
  if (field === undefined || !DataType.isTimestamp(field.type) || field.type.unit !== TimeUnit.MILLISECOND) {
    throw new ApiError(
      'invalid_request',
      `An inference log batch needs a "time" column of type Timestamp(ms); got ${field === undefined ? 'no such column' : String(field.type)}.`,
      { columns: batch.schema.fields.map((f) => f.name) },
    );
  }
  if ((batch.getChild('time')?.nullCount ?? 0) > 0) {
    throw new ApiError(
      'invalid_request',
      'The "time" column of an inference log batch has nulls; every row needs a time.',
    );
  }
  if (batch.schema.fields.some((f) => DataType.isDictionary(f.type))) {
    throw new ApiError(
      'invalid_request',
      'Dictionary-encoded columns cannot be logged; decode them before appending.',
      {
        columns: batch.schema.fields.filter((f) => DataType.isDictionary(f.type)).map((f) => f.name),
      },
    );
  }
}

/**
 * The durable, append-only inference log: per pipeline, a directory of Arrow IPC stream
 * segment files indexed by a {@link LogSegmentIndex}.
 *
 * `append` queues whole record batches (no per-row work) on a bounded queue; a single
 * writer loop merges small consecutive batches of one schema, writes them to the pipeline's
 * open segment, fsyncs at least every `syncIntervalMs` and updates the index. `query` reads pages by time range or newest-first,
 * opening only the segments and batches it needs. `open` repairs what a crash left.
 *
 * @example
 * const store = await InferenceLogStore.open({ dir: `${home}/logs`, index: new SqliteLogSegmentIndex(db) });
 * await store.append(pipelineId, resultTable); // resolves when queued (waits when the queue is full)
 * const page = await store.query(pipelineId, { start, end }); // rows in [start, end], oldest first
 * await store.stop(); // flushes and seals every segment
 */
export class InferenceLogStore {
  readonly #files: LogFilesContext;
  readonly #clock: Clock;
  readonly #opts: Required<Omit<InferenceLogStoreOptions, 'dir' | 'index' | 'clock'>>;
  readonly #queue: LogAppendQueue;
  readonly #encoder = new ArrowMessageEncoder();
  readonly #pipelines = new Map<number, PipelineWriteState>();
  #flushWaiters: FlushWaiter[] = [];
  #state: Exclude<InferenceLogStoreState, 'retrying'> = 'open';
  #failure: Error | null = null;
  /** The failure the writer is recovering from; `null` while writes succeed. */
  #down: Error | null = null;
  /** Rows taken from the queue and not yet confirmed written, per pipeline, in order. */
  readonly #backlog = new Map<number, RecordBatch[]>();
  /** Highest append seq whose rows are in the backlog. */
  #backlogSeq = 0;
  /** Segment files to cut back to their confirmed length before recovery (path → bytes). */
  readonly #truncations = new Map<string, number>();
  /** Ends a retry wait early (stop). */
  #wakeRetry: (() => void) | null = null;
  /** Highest append seq whose rows are written to the OS. */
  #writtenSeq = 0;
  /** Highest append seq whose rows are fsynced and indexed. */
  #durableSeq = 0;
  #lastSyncAt: number;
  #loop: Promise<void> = Promise.resolve();
  /** What `open` repaired. */
  readonly recovery: LogRecoveryReport;

  private constructor(
    options: InferenceLogStoreOptions,
    recovery: LogRecoveryReport,
    cache: SegmentReadCache,
  ) {
    this.#files = { root: options.dir, index: options.index, cache };
    this.#clock = options.clock ?? DEFAULTS.clock;
    this.#opts = {
      queueCapacityRows: options.queueCapacityRows ?? DEFAULTS.queueCapacityRows,
      syncIntervalMs: options.syncIntervalMs ?? DEFAULTS.syncIntervalMs,
      segmentMaxRows: options.segmentMaxRows ?? DEFAULTS.segmentMaxRows,
      segmentMaxBytes: options.segmentMaxBytes ?? DEFAULTS.segmentMaxBytes,
      maxBytesPerPipeline: options.maxBytesPerPipeline ?? DEFAULTS.maxBytesPerPipeline,
      maxBytesTotal: options.maxBytesTotal ?? DEFAULTS.maxBytesTotal,
      retryDelayMs: options.retryDelayMs ?? DEFAULTS.retryDelayMs,
      maxRetryDelayMs: options.maxRetryDelayMs ?? DEFAULTS.maxRetryDelayMs,
      unavailableWaitMs: options.unavailableWaitMs ?? DEFAULTS.unavailableWaitMs,
      stopAttempts: options.stopAttempts ?? DEFAULTS.stopAttempts,
      onError: options.onError ?? DEFAULTS.onError,
    };
    this.#queue = new LogAppendQueue(this.#opts.queueCapacityRows);
    this.#lastSyncAt = this.#clock.now();
    this.recovery = recovery;
  }

  /**
   * Opens the store: repairs segments a crash left unsealed (cutting torn tails), removes
   * orphan files, applies retention, and starts the writer loop.
   */
  static async open(options: InferenceLogStoreOptions): Promise<InferenceLogStore> {
    await mkdir(options.dir, { recursive: true });
    const cache = new SegmentReadCache(options.dir);
    const files: LogFilesContext = { root: options.dir, index: options.index, cache };
    const recovery = await recoverLogSegments(files);
    await removeOrphanSegmentFiles(files);
    const store = new InferenceLogStore(options, recovery, cache);
    await enforceLogRetention(files, store.#opts, await options.index.pipelineIds());
    store.#loop = store.#run();
    return store;
  }

  /** The writer's state. */
  get state(): InferenceLogStoreState {
    return this.#state === 'open' && this.#down !== null ? 'retrying' : this.#state;
  }

  /** The write failure the writer is retrying after, or `null` while writes succeed. */
  get lastError(): Error | null {
    return this.#down;
  }

  /** Rows queued and not yet taken by the writer. */
  get queuedRows(): number {
    return this.#queue.queuedRows;
  }

  /**
   * Queues inference rows (a table or one record batch with a `time` Timestamp(ms) column) for
   * the pipeline's log. Resolves as soon as they are queued, or — when the queue is full —
   * once the writer has made room: callers slow down, rows are never dropped. The batches
   * must not be changed afterwards. Rejects with `shutting_down` after `stop()`, and with
   * `log_store_unavailable` when the writer is failing and the queue stayed full for
   * `unavailableWaitMs` (those rows are not queued).
   */
  append(pipelineId: number, rows: Table | RecordBatch): Promise<void> {
    if (this.#state !== 'open') return Promise.reject(this.#closedError());
    if (!Number.isSafeInteger(pipelineId) || pipelineId < 1) {
      return Promise.reject(
        new ApiError('invalid_request', `A pipeline id must be a positive integer; got ${pipelineId}.`, {
          pipelineId,
        }),
      );
    }
    const batches = (rows instanceof Table ? rows.batches : [rows]).filter((b) => b.numRows > 0);
    try {
      for (const b of batches) checkBatch(b);
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    const n = batches.reduce((sum, b) => sum + b.numRows, 0);
    if (n === 0) return Promise.resolve();
    return this.#queue.push(pipelineId, batches, n, this.#clock.now());
  }

  /** Resolves once every row appended so far (queued or waiting) is fsynced and indexed. */
  flush(): Promise<void> {
    if (this.#state === 'failed') return Promise.reject(this.#closedError());
    const target = this.#queue.lastSeq;
    if (this.#durableSeq >= target) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.#flushWaiters.push({ target, resolve, reject });
      this.#queue.wake();
    });
  }

  /**
   * Stops taking appends, writes and fsyncs everything queued (including appends waiting
   * for room), seals every open segment and ends the writer loop. Safe to call twice.
   */
  async stop(): Promise<void> {
    if (this.#state === 'open') this.#state = 'stopping';
    this.#queue.wake();
    this.#wakeRetry?.();
    await this.#loop;
    if (this.#state === 'stopping') this.#state = 'stopped';
  }

  /** Reads one page of a pipeline's log (see {@link LogQuery} for the defaults). */
  query(pipelineId: number, query: LogQuery = {}): Promise<LogPage> {
    return queryLogPage(
      {
        index: this.#files.index,
        cache: this.#files.cache,
        openSegment: (id) => this.#pipelines.get(id)?.open ?? undefined,
      },
      pipelineId,
      query,
    );
  }

  #closedError(): ApiError {
    return this.#state === 'failed'
      ? new ApiError(
          'internal_error',
          `The inference log writer stopped after a write failure (${this.#failure?.message ?? 'unknown'}); see the server log.`,
        )
      : new ApiError('shutting_down', 'The inference log store is stopped and takes no more rows.');
  }

  #unavailableError(): ApiError {
    return new ApiError(
      'log_store_unavailable',
      `The inference log cannot be written (${this.#down?.message ?? 'unknown error'}) and its queue stayed full for ${this.#opts.unavailableWaitMs} ms, so this request's rows were not logged; the writer keeps retrying (see GET /v1/health). Retry shortly.`,
      { inferenceLogs: this.state },
    );
  }

  /**
   * The single writer: drains the queue, writes, syncs on schedule, and seals everything at
   * stop. A failure does not end it: it repairs what the failed write left, keeps the rows it
   * could not write, and retries with backoff (rows meanwhile wait in the bounded queue).
   */
  async #run(): Promise<void> {
    let failures = 0;
    let stopFailures = 0;
    for (;;) {
      try {
        if (this.#down !== null) {
          await this.#repair();
          await this.#writeBacklog();
          this.#down = null;
          failures = 0;
        }
        if (await this.#step()) return;
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
        await this.#waitToRetry(delay);
      }
    }
  }

  /** One turn of the writer loop; `true` once stopped with everything sealed. */
  async #step(): Promise<boolean> {
    if (this.#queue.hasItems) {
      this.#take(this.#queue.takeAll());
      await this.#writeBacklog();
      if (this.#syncDue()) await this.#sync();
      return false;
    }
    if (this.#writtenSeq > this.#durableSeq || this.#flushWaiters.length > 0) {
      if (this.#syncDue() || this.#state !== 'open') {
        await this.#sync();
        return false;
      }
    }
    if (this.#state !== 'open' && this.#queue.idle) {
      await this.#sealAll();
      this.#sync0();
      return true;
    }
    await this.#idle();
    return false;
  }

  /**
   * Waits `delay` ms before the next attempt (less after stop). Meanwhile appends waiting for
   * room longer than `unavailableWaitMs` are refused, so callers are not held indefinitely.
   */
  async #waitToRetry(delay: number): Promise<void> {
    const bound = this.#opts.unavailableWaitMs;
    const refuse = (): void => {
      this.#queue.refuseWaitingSince(this.#clock.now() - bound, this.#unavailableError());
    };
    refuse();
    let left = this.#state === 'open' ? delay : Math.min(delay, this.#opts.retryDelayMs);
    while (left > 0) {
      const oldest = this.#queue.oldestWaitSince;
      // Wake when the oldest waiter's bound is up, if that comes before the retry.
      const step = oldest === null ? left : Math.max(1, Math.min(left, oldest + bound - this.#clock.now()));
      const started = this.#clock.now();
      await new Promise<void>((resolve) => {
        const timer = this.#clock.setTimeout(() => {
          this.#wakeRetry = null;
          resolve();
        }, step);
        this.#wakeRetry = () => {
          this.#clock.clearTimeout(timer);
          this.#wakeRetry = null;
          resolve();
        };
      });
      refuse();
      if (this.#state !== 'open' && this.#clock.now() - started < step) return;
      left -= step;
    }
  }

  /**
   * Brings the files back to a known state after a failure: every open segment is closed and
   * cut back to the batches its index confirms (a failed write may have left part of one),
   * then sealed by crash recovery; pipelines re-read their position from the index.
   */
  async #repair(): Promise<void> {
    for (const st of this.#pipelines.values()) {
      const seg = st.open;
      if (seg === null) continue;
      this.#truncations.set(seg.path, seg.index.endOffset);
      st.open = null;
      await seg.close();
    }
    this.#pipelines.clear();
    for (const [path, bytes] of this.#truncations) {
      try {
        await truncate(path, bytes);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
      this.#truncations.delete(path);
    }
    await recoverLogSegments(this.#files);
  }

  /** Moves appends taken from the queue into the per-pipeline backlog. */
  #take(items: QueuedAppend[]): void {
    for (const item of items) {
      const list = this.#backlog.get(item.pipelineId);
      if (list === undefined) this.#backlog.set(item.pipelineId, [...item.batches]);
      else for (const b of item.batches) list.push(b);
    }
    this.#backlogSeq = items.at(-1)?.seq ?? this.#backlogSeq;
  }

  #syncDue(): boolean {
    return this.#flushWaiters.length > 0 || this.#clock.now() - this.#lastSyncAt >= this.#opts.syncIntervalMs;
  }

  /** Waits for an append, a flush, stop, or (with unsynced rows) the sync deadline. */
  async #idle(): Promise<void> {
    let timer: TimerHandle | null = null;
    if (this.#writtenSeq > this.#durableSeq) {
      const wait = this.#lastSyncAt + this.#opts.syncIntervalMs - this.#clock.now();
      timer = this.#clock.setTimeout(() => this.#queue.wake(), Math.max(0, wait));
    }
    try {
      await this.#queue.whenItems();
    } finally {
      if (timer !== null) this.#clock.clearTimeout(timer);
    }
  }

  async #pipelineState(pipelineId: number): Promise<PipelineWriteState> {
    let st = this.#pipelines.get(pipelineId);
    if (st === undefined) {
      const [last] = await this.#files.index.newestSegments(pipelineId, 1);
      st = {
        nextSeq: (last?.seq ?? 0) + 1,
        lastTime: last?.maxTime === null || last === undefined ? -(2n ** 63n) : BigInt(last.maxTime),
        open: null,
      };
      this.#pipelines.set(pipelineId, st);
    }
    return st;
  }

  /** Writes the whole backlog (per pipeline, in arrival order), then applies retention. */
  async #writeBacklog(): Promise<void> {
    const sealedPipelines = new Set<number>();
    // Time is non-decreasing per pipeline, not across them, so each pipeline is written apart.
    for (const [pipelineId, batches] of this.#backlog) {
      if (await this.#writePipeline(pipelineId, batches)) sealedPipelines.add(pipelineId);
    }
    this.#writtenSeq = this.#backlogSeq;
    if (sealedPipelines.size > 0) await enforceLogRetention(this.#files, this.#opts, sealedPipelines);
  }

  /**
   * Writes one pipeline's backlog and removes it. On a failure, leaves in the backlog exactly
   * the batches that are not confirmed in the file (so a retry neither loses nor repeats rows)
   * and rethrows. Returns whether a segment was sealed (rolled).
   */
  async #writePipeline(pipelineId: number, batches: RecordBatch[]): Promise<boolean> {
    const st = await this.#pipelineState(pipelineId);
    // A merged batch stays within a segment's caps, so segments still roll where configured.
    const merged = coalesceLogBatches(
      batches,
      COALESCE_BELOW_ROWS,
      Math.min(COALESCE_MAX_ROWS, this.#opts.segmentMaxRows),
      Math.min(COALESCE_MAX_BYTES, this.#opts.segmentMaxBytes / 2),
    );
    // Each staged batch, with its segment and its position there: it is in the file once the
    // segment's batch index counts past that position.
    const placed: { batch: RecordBatch; seg: OpenSegment; pos: number }[] = [];
    let sealed = false;
    try {
      for (const original of merged) {
        const { batch, last } = clampTime(original, st.lastTime);
        st.lastTime = last;
        const schemaId = schemaIdOf(batch.schema);
        const msg = this.#encoder.encodeBatch(batch);
        let seg = st.open;
        if (
          seg !== null &&
          (seg.schemaId !== schemaId ||
            (seg.plannedRows > 0 &&
              (seg.plannedRows + batch.numRows > this.#opts.segmentMaxRows ||
                seg.plannedBytes + msg.bytes + 8 > this.#opts.segmentMaxBytes)))
        ) {
          // Roll: a segment holds one schema and stays under its size caps.
          await this.#seal(st, seg);
          sealed = true;
          seg = null;
        }
        if (seg === null) {
          const seq = st.nextSeq++;
          // Index row first: a file never exists without a row (orphans are swept at open).
          await this.#files.index.addSegment({
            pipelineId: pipelineId,
            seq,
            schemaId,
            createdAt: this.#clock.now(),
          });
          seg = await OpenSegment.create(
            {
              pipelineId: pipelineId,
              seq,
              schemaId,
              schema: batch.schema,
              path: segmentPath(this.#files.root, pipelineId, seq),
            },
            this.#encoder.encodeSchema(batch.schema).chunks,
          );
          st.open = seg;
        }
        const t = timeValues(batch);
        placed.push({ batch, seg, pos: seg.index.count + seg.stagedBatches });
        seg.stage(msg.chunks, msg.bytes, batch.numRows, Number(t[0]), Number(last));
      }
      await st.open?.writeStaged();
    } catch (err) {
      const firstUnwritten = placed.findIndex((p) => p.seg.index.count <= p.pos);
      const from = firstUnwritten === -1 ? placed.length : firstUnwritten;
      this.#backlog.set(pipelineId, [
        ...placed.slice(from).map((p) => p.batch),
        ...merged.slice(placed.length),
      ]);
      throw err;
    }
    this.#backlog.delete(pipelineId);
    return sealed;
  }

  async #seal(st: PipelineWriteState, seg: OpenSegment): Promise<void> {
    const update = await seg.seal(sidecarPath(this.#files.root, seg.pipelineId, seg.seq));
    await this.#files.index.updateSegments([update]);
    this.#files.cache.put(seg.pipelineId, seg.seq, seg.view);
    if (st.open === seg) st.open = null;
  }

  /** fsyncs every open segment with new bytes, updates the index, and releases flush waiters. */
  async #sync(): Promise<void> {
    const target = this.#writtenSeq;
    const updates: LogSegmentUpdate[] = [];
    for (const st of this.#pipelines.values()) {
      const seg = st.open;
      if (seg !== null && seg.dirty) {
        await seg.sync();
        updates.push(seg.update(false));
      }
    }
    if (updates.length > 0) await this.#files.index.updateSegments(updates);
    this.#durableSeq = target;
    this.#lastSyncAt = this.#clock.now();
    this.#releaseFlushes();
  }

  /** After the final seal: everything written is durable. */
  #sync0(): void {
    this.#durableSeq = this.#writtenSeq;
    this.#releaseFlushes();
  }

  #releaseFlushes(): void {
    const still: FlushWaiter[] = [];
    for (const w of this.#flushWaiters) {
      if (w.target <= this.#durableSeq) w.resolve();
      else still.push(w);
    }
    this.#flushWaiters = still;
  }

  async #sealAll(): Promise<void> {
    const sealed: number[] = [];
    for (const [pipelineId, st] of this.#pipelines) {
      if (st.open !== null) {
        await this.#seal(st, st.open);
        sealed.push(pipelineId);
      }
    }
    if (sealed.length > 0) await enforceLogRetention(this.#files, this.#opts, sealed);
  }

  /** Gives up (only at stop, after `stopAttempts` failed attempts): what is not written is lost. */
  #fail(err: Error): void {
    this.#failure = err;
    this.#state = 'failed';
    for (const w of this.#flushWaiters) w.reject(this.#closedError());
    this.#flushWaiters = [];
    this.#queue.failWaiters(this.#closedError());
    for (const st of this.#pipelines.values()) void st.open?.close();
  }
}
