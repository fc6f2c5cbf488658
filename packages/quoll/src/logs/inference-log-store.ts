import { mkdir } from 'node:fs/promises';
import type { RecordBatch, Table } from 'apache-arrow';
import { systemClock } from '../clock/index.js';
import type { Clock, TimerHandle } from '../clock/index.js';
import { ApiError } from '../errors/index.js';
import { COALESCE_MAX_BYTES, COALESCE_MAX_ROWS } from './coalesce-log-batches.js';
import { LogHandOff } from './log-hand-off.js';
import type { LogRowSource } from './log-row-source.js';
import { enforceLogRetention, removeOrphanSegmentFiles } from './log-segment-files.js';
import type { LogFilesContext } from './log-segment-files.js';
import type { LogSegmentIndex, LogSegmentUpdate } from './log-segment-index.js';
import type { FromWriter, IndexMethod, LogWriterSettings, SegmentProgress } from './log-writer-protocol.js';
import { LogWriterThread } from './log-writer-thread.js';
import { queryLogPage } from './query-log-page.js';
import type { LogPage, LogQuery } from './query-log-page.js';
import { recoverLogSegments } from './recover-log-segments.js';
import type { LogRecoveryReport } from './recover-log-segments.js';
import { SegmentMirror } from './segment-mirror.js';
import { SegmentReadCache } from './segment-read-cache.js';
import { logQuarantineOf, printLogQuarantine } from './poison-log-batch-error.js';
import type { LogQuarantine } from './poison-log-batch-error.js';

/** Options of {@link InferenceLogStore.open}. */
export interface InferenceLogStoreOptions {
  /** Root directory of the segment files: `<dir>/<pipelineId>/<seq>.arrows` (created if missing). */
  dir: string;
  /** Where segments are indexed (e.g. `SqliteLogSegmentIndex`). */
  index: LogSegmentIndex;
  /**
   * Time source of the owner's side: when appends began waiting for room, and the timer that
   * refuses them while the writer fails. (The writer thread keeps its own system clock.)
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
   * writer thread has written them (it asks for rows whenever it is idle); with
   * `handOffDelayMs` before it, this bounds what a power loss can take (the defaults: 50 +
   * 150 = the documented 200 ms).
   * @default 150
   */
  syncIntervalMs?: number;
  /**
   * Longest time appended rows wait on this thread before they are handed to the writer
   * thread, so that many small appends (batch-1 requests) cross in one message, one wake-up of
   * the writer and one file write instead of one each. A `flush()`, `stop()`, or a queue holding
   * `handOffRows` rows hands them over at once. `0` hands every append over as soon as the
   * writer is idle. Each hand-off wakes the writer thread, which on a shared core preempts the
   * request thread, and a wake-up of a sleeping thread costs it far more CPU than the write
   * itself (on the 2-core VM of docs/benchmarks.md, ≈ 0.2 ms each: caches and page tables
   * cold again): 20 ms took 16 % of the CPU per batch-1 request off (against 4 ms), and 50 ms
   * a quarter of the writer thread's CPU at JSON batch 100 (against 20 ms); still far inside
   * the crash guarantee (rows answered 1.5 s before a SIGKILL survive).
   * @default 50
   */
  handOffDelayMs?: number;
  /**
   * Rows queued that are handed to the writer at once, without waiting for `handOffDelayMs`.
   * Above what a busy server queues in `handOffDelayMs` at batch 100 (≈ 12 000 rows in 50 ms at
   * 2 400 JSON 100-row requests/s on the machine of docs/benchmarks.md), so that the delay, not
   * this count, sets how often the writer thread is woken; at 8 192 those servers handed over
   * every ≈ 35 ms, and each hand-off is a wake-up of the writer and a write.
   * @default 32768
   */
  handOffRows?: number;
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
   * Told about every failed write attempt, and about every unexpected end of the writer
   * thread (it is restarted): `retryInMs` is when the writer tries again, `null` when it
   * gives up (only during `stop()`).
   * @default prints to stderr
   */
  onError?: (error: Error, retry: { attempt: number; retryInMs: number | null }) => void;
  /**
   * Told about rows the writer set aside because they cannot be written by themselves (a batch
   * that cannot be merged, re-timed, encoded or stored as data): only those are dropped, the
   * writer goes on with every other row.
   * @default prints one line to stderr
   */
  onQuarantine?: (quarantine: LogQuarantine) => void;
}

/**
 * The writer's state: `open` takes appends; `retrying` after a write failure or an unexpected
 * end of the writer thread (appends are still queued, the writer retries with backoff, or is
 * restarted, and returns to `open` once a write succeeds); after `stop()` it is `stopped`, or
 * `failed` when writes still failed at stop.
 */
export type InferenceLogStoreState = 'open' | 'retrying' | 'stopping' | 'stopped' | 'failed';

interface FlushWaiter {
  target: number;
  resolve: () => void;
  reject: (err: Error) => void;
}

/**
 * The store's defaults. `handOffDelayMs + syncIntervalMs` is the longest an answered row waits
 * before it is fsynced: the "a power loss loses at most the last 200 ms" of
 * docs/inference-logs.md.
 */
export const INFERENCE_LOG_DEFAULTS = {
  clock: systemClock,
  queueCapacityRows: 500_000,
  syncIntervalMs: 150,
  handOffDelayMs: 50,
  handOffRows: 32_768,
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
 * The durable, append-only inference log: per pipeline, a directory of Arrow IPC stream
 * segment files indexed by a {@link LogSegmentIndex}.
 *
 * `append` queues whole record batches (no per-row work) on a bounded queue. The writing runs
 * on its own thread (`log-writer-worker.ts`, see {@link LogWriter}): whenever it is idle it
 * takes everything queued, merges small consecutive batches of one schema, writes them to the
 * pipeline's open segment, fsyncs at least every `syncIntervalMs` and updates the index, which
 * stays on this thread with the database connection (the writer calls it through messages).
 * If the writer thread dies, it is restarted and given again the rows it had not confirmed.
 * `query` reads pages by time range or newest-first, opening only the segments and batches it
 * needs (the open segments through the writer's progress reports). `open` repairs what a
 * crash left.
 *
 * @example
 * const store = await InferenceLogStore.open({ dir: `${home}/logs`, index: new SqliteLogSegmentIndex(db) });
 * await store.append(pipelineId, resultTable); // resolves when queued (waits when the queue is full)
 * const page = await store.query(pipelineId, { start, end }); // rows in [start, end], oldest first
 * await store.stop(); // flushes and seals every segment, ends the writer thread
 */
export class InferenceLogStore {
  readonly #files: LogFilesContext;
  readonly #clock: Clock;
  #quarantined = 0;
  readonly #opts: Required<Omit<InferenceLogStoreOptions, 'dir' | 'index' | 'clock'>>;
  readonly #settings: Omit<LogWriterSettings, 'startSeq'>;
  /** The append queue, the hand-off timer, the packing, and what the writer has not confirmed. */
  readonly #handOff: LogHandOff;
  /** What the writer thread has written of each pipeline's open segment. */
  readonly #mirrors = new Map<number, SegmentMirror>();
  #thread: LogWriterThread | null = null;
  #flushWaiters: FlushWaiter[] = [];
  #state: Exclude<InferenceLogStoreState, 'retrying'> = 'open';
  #failure: Error | null = null;
  /** The failure the writer is recovering from; `null` while writes succeed. */
  #down: Error | null = null;
  /** Highest append seq whose rows are fsynced and indexed. */
  #durableSeq = 0;
  /** Highest append seq the writer confirmed written to the OS (`ready`), or durable. */
  #writtenSeq = 0;
  /** Unexpected ends of the writer thread since it last wrote, and how many came after stop(). */
  #crashes = 0;
  #crashesAtStop = 0;
  /** After a restart: the writer is back once it confirms this seq (the rows sent again). */
  #replaySeq: number | null = null;
  #refuseTimer: TimerHandle | null = null;
  #restartTimer: TimerHandle | null = null;
  /** Resolves when the writer is done for good (stopped, or failed at stop). */
  readonly #done: Promise<void>;
  #finish: () => void = () => undefined;
  /** Settles `open` once the first writer thread has started (or failed to). */
  #started: { resolve: () => void; reject: (err: Error) => void } | null = null;
  /** What `open` repaired. */
  readonly recovery: LogRecoveryReport;

  private constructor(
    options: InferenceLogStoreOptions,
    recovery: LogRecoveryReport,
    cache: SegmentReadCache,
  ) {
    this.#files = { root: options.dir, index: options.index, cache };
    this.#clock = options.clock ?? INFERENCE_LOG_DEFAULTS.clock;
    this.#opts = {
      queueCapacityRows: options.queueCapacityRows ?? INFERENCE_LOG_DEFAULTS.queueCapacityRows,
      syncIntervalMs: options.syncIntervalMs ?? INFERENCE_LOG_DEFAULTS.syncIntervalMs,
      handOffDelayMs: Math.max(0, options.handOffDelayMs ?? INFERENCE_LOG_DEFAULTS.handOffDelayMs),
      handOffRows: Math.max(1, options.handOffRows ?? INFERENCE_LOG_DEFAULTS.handOffRows),
      segmentMaxRows: options.segmentMaxRows ?? INFERENCE_LOG_DEFAULTS.segmentMaxRows,
      segmentMaxBytes: options.segmentMaxBytes ?? INFERENCE_LOG_DEFAULTS.segmentMaxBytes,
      maxBytesPerPipeline: options.maxBytesPerPipeline ?? INFERENCE_LOG_DEFAULTS.maxBytesPerPipeline,
      maxBytesTotal: options.maxBytesTotal ?? INFERENCE_LOG_DEFAULTS.maxBytesTotal,
      retryDelayMs: options.retryDelayMs ?? INFERENCE_LOG_DEFAULTS.retryDelayMs,
      maxRetryDelayMs: options.maxRetryDelayMs ?? INFERENCE_LOG_DEFAULTS.maxRetryDelayMs,
      unavailableWaitMs: options.unavailableWaitMs ?? INFERENCE_LOG_DEFAULTS.unavailableWaitMs,
      stopAttempts: options.stopAttempts ?? INFERENCE_LOG_DEFAULTS.stopAttempts,
      onError: options.onError ?? INFERENCE_LOG_DEFAULTS.onError,
      onQuarantine: options.onQuarantine ?? printLogQuarantine,
    };
    const o = this.#opts;
    this.#settings = {
      dir: options.dir,
      syncIntervalMs: o.syncIntervalMs,
      segmentMaxRows: o.segmentMaxRows,
      segmentMaxBytes: o.segmentMaxBytes,
      maxBytesPerPipeline: o.maxBytesPerPipeline,
      maxBytesTotal: o.maxBytesTotal,
      retryDelayMs: o.retryDelayMs,
      maxRetryDelayMs: o.maxRetryDelayMs,
      stopAttempts: o.stopAttempts,
    };
    this.#handOff = new LogHandOff({
      queueCapacityRows: o.queueCapacityRows,
      handOffDelayMs: o.handOffDelayMs,
      handOffRows: o.handOffRows,
      clock: this.#clock,
      // Merged batches stay within a segment's caps, so segments still roll where configured.
      packer: {
        mergeMaxRows: Math.min(COALESCE_MAX_ROWS, o.segmentMaxRows),
        mergeMaxBytes: Math.min(COALESCE_MAX_BYTES, o.segmentMaxBytes / 2),
      },
      closing: () => this.#state !== 'open',
      post: (msg, transfer) => this.#thread?.send(msg, transfer),
      lastSeqLowered: () => this.#lastSeqLowered(),
    });
    this.#done = new Promise((resolve) => (this.#finish = resolve));
    this.recovery = recovery;
  }

  /**
   * Opens the store: repairs segments a crash left unsealed (cutting torn tails), removes
   * orphan files, applies retention, and starts the writer thread.
   */
  static async open(options: InferenceLogStoreOptions): Promise<InferenceLogStore> {
    await mkdir(options.dir, { recursive: true });
    const cache = new SegmentReadCache(options.dir);
    const files: LogFilesContext = { root: options.dir, index: options.index, cache };
    const recovery = await recoverLogSegments(files);
    await removeOrphanSegmentFiles(files);
    const store = new InferenceLogStore(options, recovery, cache);
    await enforceLogRetention(files, store.#opts, await options.index.pipelineIds());
    await new Promise<void>((resolve, reject) => {
      store.#started = { resolve, reject };
      store.#start();
    });
    return store;
  }

  /** The writer's state. */
  get state(): InferenceLogStoreState {
    return this.#state === 'open' && this.#down !== null ? 'retrying' : this.#state;
  }

  /** The write failure (or writer-thread crash) the writer is recovering from, or `null` while writes succeed. */
  get lastError(): Error | null {
    return this.#down;
  }

  /** Rows queued and not yet taken by the writer. */
  get queuedRows(): number {
    return this.#handOff.queue.queuedRows;
  }

  /** Appends refused alone with `log_rows_refused` (their rows could not be taken) since the store opened. */
  get refusedAppends(): number {
    return this.#handOff.refusedAppends;
  }

  /** Batches (or unreadable hand-offs) the writer set aside since the store opened: see {@link InferenceLogs.quarantinedBatches}. */
  get quarantinedBatches(): number {
    return this.#quarantined;
  }

  /** The writer thread's id, `null` while none runs (being restarted, or stopped). */
  get writerThreadId(): number | null {
    return this.#thread?.threadId ?? null;
  }

  /**
   * Queues inference rows (a table, one record batch with a `time` Timestamp(ms) column, or a
   * {@link LogRowSource} of such rows) for the pipeline's log. Resolves as soon as they are
   * queued, or — when the queue is full — once the writer has made room: callers slow down,
   * rows are never dropped. The rows must not be changed until the promise settles: small
   * batches are copied when they are admitted (which, with the queue full, is after `append`
   * returns; a source writes its rows then), bigger ones (32 KiB of column data and more) are
   * kept until the writer has written them. Rejects with `shutting_down` after `stop()`, with `log_store_unavailable` when
   * the writer is failing and the queue stayed full for `unavailableWaitMs` (those rows are
   * not queued), and with `log_rows_refused` when these rows cannot be taken (they do not
   * match their schema, or a row source throws): only this append fails, the others go on.
   */
  append(pipelineId: number, rows: Table | RecordBatch | LogRowSource): Promise<void> {
    if (this.#state !== 'open') return Promise.reject(this.#closedError());
    return this.#handOff.append(pipelineId, rows);
  }

  /** Resolves once every row appended so far (queued or waiting) is fsynced and indexed. */
  flush(): Promise<void> {
    if (this.#state === 'failed') return Promise.reject(this.#closedError());
    const target = this.#handOff.queue.lastSeq;
    if (this.#durableSeq >= target) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.#flushWaiters.push({ target, resolve, reject });
      this.#thread?.send({ type: 'flush', seq: target });
      this.#handOff.hurry();
    });
  }

  /**
   * Stops taking appends, writes and fsyncs everything queued (including appends waiting
   * for room), seals every open segment and ends the writer thread. Safe to call twice.
   */
  async stop(): Promise<void> {
    if (this.#state === 'open') {
      this.#state = 'stopping';
      this.#thread?.send({ type: 'stop', lastSeq: this.#handOff.queue.lastSeq });
      this.#handOff.hurry();
      if (this.#restartTimer !== null) {
        // A writer thread waiting to be restarted: restart it now, to write what is left.
        this.#clock.clearTimeout(this.#restartTimer);
        this.#restartTimer = null;
        void this.#restart();
      }
    }
    await this.#done;
    this.#handOff.close();
    if (this.#refuseTimer !== null) this.#clock.clearTimeout(this.#refuseTimer);
    this.#refuseTimer = null;
    if (this.#state === 'stopping') this.#state = 'stopped';
  }

  /**
   * Ends the writer thread abruptly, as a crash would (for failure drills and tests): the
   * store reports it through `onError`, shows `retrying`, restarts the thread and gives it
   * again every row it had not confirmed written.
   */
  async killWriterThread(): Promise<void> {
    await this.#thread?.terminate();
  }

  /** Bytes of segment files, of one pipeline or of all (as the index records them). */
  storedBytes(pipelineId?: number): Promise<number> {
    return this.#files.index.totalBytes(pipelineId);
  }

  /** Reads one page of a pipeline's log (see {@link LogQuery} for the defaults). */
  query(pipelineId: number, query: LogQuery = {}): Promise<LogPage> {
    return queryLogPage(
      {
        index: this.#files.index,
        cache: this.#files.cache,
        openSegment: (id) => this.#mirrors.get(id),
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

  /** Starts a writer thread and gives it what an earlier one left unconfirmed. */
  #start(): void {
    this.#mirrors.clear();
    // A restarted thread starts at what its predecessors confirmed: given nothing again, it
    // would otherwise wait at stop (and flush) for append seqs it never sees.
    const settings: LogWriterSettings = { ...this.#settings, startSeq: this.#writtenSeq };
    const thread: LogWriterThread = new LogWriterThread(settings, this.#files.index, {
      message: (msg) => {
        if (this.#thread === thread) this.#onMessage(msg);
      },
      indexCalled: (method, args) => this.#onIndexCalled(method, args),
      exit: (error) => {
        if (this.#thread === thread) this.#onExit(error);
      },
    });
    this.#thread = thread;
    // Back once it has written what it was given again (at once when that is nothing).
    this.#replaySeq = this.#handOff.attach();
    const target = this.#flushWaiters.reduce((max, w) => Math.max(max, w.target), 0);
    if (target > this.#durableSeq) thread.send({ type: 'flush', seq: target });
    if (this.#state === 'stopping') thread.send({ type: 'stop', lastSeq: this.#handOff.queue.lastSeq });
  }

  #onMessage(msg: Exclude<FromWriter, { type: 'index-call' }>): void {
    switch (msg.type) {
      case 'ready':
        this.#handOff.recycle(msg.arenas);
        this.#started?.resolve();
        this.#started = null;
        this.#handOff.confirm(msg.writtenSeq);
        this.#writtenSeq = Math.max(this.#writtenSeq, msg.writtenSeq);
        this.#applyProgress(msg.segments);
        if (this.#replaySeq !== null && msg.writtenSeq >= this.#replaySeq) {
          this.#replaySeq = null;
          this.#recovered();
        }
        this.#handOff.wantsRows();
        break;
      case 'durable':
        this.#handOff.confirm(msg.seq);
        this.#applyProgress(msg.segments);
        this.#durableSeq = Math.max(this.#durableSeq, msg.seq);
        this.#writtenSeq = Math.max(this.#writtenSeq, msg.seq);
        this.#releaseFlushes();
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
      case 'quarantined': {
        this.#quarantined++;
        this.#opts.onQuarantine(logQuarantineOf(msg));
        break;
      }
      case 'stopped':
        if (msg.failed) this.#fail(this.#down ?? new Error('the inference log writer failed at stop'));
        break;
    }
  }

  #recovered(): void {
    this.#down = null;
    this.#crashes = 0;
    if (this.#refuseTimer !== null) this.#clock.clearTimeout(this.#refuseTimer);
    this.#refuseTimer = null;
  }

  /** The writer thread ended: at the end of stop, or unexpectedly (then it is restarted). */
  #onExit(error: Error | null): void {
    this.#thread = null;
    this.#handOff.detach();
    if (this.#started !== null) {
      // The first thread never came up: `open` fails (nothing was queued yet).
      this.#started.reject(error ?? new Error('The inference log writer thread ended before it started.'));
      this.#started = null;
      this.#state = 'failed';
      this.#finish();
      return;
    }
    if (error === null || this.#state === 'failed') {
      this.#finish();
      return;
    }
    this.#crashed(error);
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
    this.#restartTimer = this.#clock.setTimeout(() => {
      this.#restartTimer = null;
      void this.#restart();
    }, wait);
  }

  /** Seals what the dead thread left (as at open) and starts a new one. */
  async #restart(): Promise<void> {
    try {
      await recoverLogSegments(this.#files);
    } catch (err) {
      this.#crashed(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    // Recovery fsynced and indexed what the dead thread had written (sealed segments were
    // fsynced when sealed): every row it confirmed is durable, and flushes waiting for them end.
    this.#durableSeq = Math.max(this.#durableSeq, this.#writtenSeq);
    this.#releaseFlushes();
    this.#start();
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
      const refused = queue.refuseWaitingSince(this.#clock.now() - bound, this.#unavailableError());
      if (refused > 0) this.#lastSeqLowered();
      const oldest = queue.oldestWaitSince;
      const next = oldest === null ? bound : Math.max(1, oldest + bound - this.#clock.now());
      this.#refuseTimer = this.#clock.setTimeout(tick, next);
    };
    tick();
  }

  #applyProgress(segments: readonly SegmentProgress[]): void {
    for (const p of segments) {
      const mirror = this.#mirrors.get(p.pipelineId);
      if (mirror?.seq === p.seq) mirror.apply(p);
      else if (p.schemaMessage !== null)
        this.#mirrors.set(
          p.pipelineId,
          SegmentMirror.fromFirst(this.#files.root, { ...p, schemaMessage: p.schemaMessage }),
        );
    }
  }

  /** Keeps the read cache and the mirrors in step with what the writer did to the index. */
  #onIndexCalled(method: IndexMethod, args: unknown[]): void {
    const forget = (pipelineId: number, seq: number): void => {
      this.#files.cache.evict(pipelineId, seq);
      if (this.#mirrors.get(pipelineId)?.seq === seq) this.#mirrors.delete(pipelineId);
    };
    if (method === 'updateSegments') {
      for (const u of args[0] as LogSegmentUpdate[]) if (u.sealed) forget(u.pipelineId, u.seq);
    } else if (method === 'deleteSegment') {
      forget(args[0] as number, args[1] as number);
    }
  }

  /**
   * Appends waiting for room were refused (or failed their copy), so the last seq may have gone
   * down. A flush or stop waiting for a seq above it would wait for an append that never comes:
   * every append still to be written has a seq at most the queue's last, so theirs become that.
   * The writer thread needs no new flush message: it already syncs for a seq at least each
   * target (`flush()` sent it), and a restarted thread is sent the lowered ones at start.
   */
  #lastSeqLowered(): void {
    const lastSeq = this.#handOff.queue.lastSeq;
    for (const w of this.#flushWaiters) w.target = Math.min(w.target, lastSeq);
    this.#releaseFlushes();
    if (this.#state === 'stopping') this.#thread?.send({ type: 'stop', lastSeq });
  }

  #releaseFlushes(): void {
    const still: FlushWaiter[] = [];
    for (const w of this.#flushWaiters) {
      if (w.target <= this.#durableSeq) w.resolve();
      else still.push(w);
    }
    this.#flushWaiters = still;
  }

  /** Gives up (only at stop, after `stopAttempts` failed attempts): what is not written is lost. */
  #fail(err: Error): void {
    this.#failure = err;
    this.#state = 'failed';
    for (const w of this.#flushWaiters) w.reject(this.#closedError());
    this.#flushWaiters = [];
    this.#handOff.queue.failWaiters(this.#closedError());
  }
}
