import { mkdir } from 'node:fs/promises';
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
   * Told about a write failure that stopped the writer (appends then fail with `internal_error`).
   * @default prints to stderr
   */
  onError?: (error: Error) => void;
}

/** The writer's state: `open` takes appends; after `stop()` it is `stopped`; a write failure makes it `failed`. */
export type InferenceLogStoreState = 'open' | 'stopping' | 'stopped' | 'failed';

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
  onError: (error: Error) => {
    process.stderr.write(`quoll: inference log writer stopped: ${error.stack ?? error.message}\n`);
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
  #state: InferenceLogStoreState = 'open';
  #failure: Error | null = null;
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
    return this.#state;
  }

  /** Rows queued and not yet taken by the writer. */
  get queuedRows(): number {
    return this.#queue.queuedRows;
  }

  /**
   * Queues inference rows (a table or one record batch with a `time` Timestamp(ms) column) for
   * the pipeline's log. Resolves as soon as they are queued, or — when the queue is full —
   * once the writer has made room: callers slow down, rows are never dropped. The batches
   * must not be changed afterwards. Rejects with `shutting_down` after `stop()`.
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
    return this.#queue.push(pipelineId, batches, n);
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

  /** The single writer: drains the queue, writes, syncs on schedule, and seals everything at stop. */
  async #run(): Promise<void> {
    try {
      for (;;) {
        if (this.#queue.hasItems) {
          await this.#write(this.#queue.takeAll());
          if (this.#syncDue()) await this.#sync();
          continue;
        }
        if (this.#writtenSeq > this.#durableSeq || this.#flushWaiters.length > 0) {
          if (this.#syncDue() || this.#state !== 'open') {
            await this.#sync();
            continue;
          }
        }
        if (this.#state !== 'open' && this.#queue.idle) break;
        await this.#idle();
      }
      await this.#sealAll();
      this.#sync0();
    } catch (err) {
      this.#fail(err instanceof Error ? err : new Error(String(err)));
    }
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

  async #write(items: QueuedAppend[]): Promise<void> {
    const touched = new Set<OpenSegment>();
    const sealedPipelines = new Set<number>();
    // Per pipeline in arrival order (time is non-decreasing per pipeline, not across them).
    const perPipeline = new Map<number, RecordBatch[]>();
    for (const item of items) {
      const list = perPipeline.get(item.pipelineId);
      if (list === undefined) perPipeline.set(item.pipelineId, [...item.batches]);
      else for (const b of item.batches) list.push(b);
    }
    for (const [pipelineId, batches] of perPipeline) {
      const st = await this.#pipelineState(pipelineId);
      // A merged batch stays within a segment's caps, so segments still roll where configured.
      const merged = coalesceLogBatches(
        batches,
        COALESCE_BELOW_ROWS,
        Math.min(COALESCE_MAX_ROWS, this.#opts.segmentMaxRows),
        Math.min(COALESCE_MAX_BYTES, this.#opts.segmentMaxBytes / 2),
      );
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
          touched.delete(seg);
          sealedPipelines.add(pipelineId);
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
        seg.stage(msg.chunks, msg.bytes, batch.numRows, Number(t[0]), Number(last));
        touched.add(seg);
      }
    }
    for (const seg of touched) await seg.writeStaged();
    this.#writtenSeq = items.at(-1)?.seq ?? this.#writtenSeq;
    if (sealedPipelines.size > 0) await enforceLogRetention(this.#files, this.#opts, sealedPipelines);
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

  #fail(err: Error): void {
    this.#failure = err;
    this.#state = 'failed';
    this.#opts.onError(err);
    for (const w of this.#flushWaiters) w.reject(this.#closedError());
    this.#flushWaiters = [];
    this.#queue.failWaiters(this.#closedError());
    for (const st of this.#pipelines.values()) void st.open?.close();
  }
}
