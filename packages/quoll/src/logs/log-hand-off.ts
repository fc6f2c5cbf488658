import type { RecordBatch, Table } from 'apache-arrow';
import type { Clock, TimerHandle } from '../clock/index.js';
import { ApiError } from '../errors/index.js';
import { COALESCE_MAX_BYTES, COALESCE_MAX_ROWS } from './coalesce-log-batches.js';
import { LOG_APPEND_ADMITTED, LogAppendQueue } from './log-append-queue.js';
import { admitLogRows } from './log-append-rules.js';
import { checkLogBatch, rowsRefused } from './log-batch-checks.js';
import { isLogRowSource } from './log-row-source.js';
import type { LogAppendBatch, LogRowSource } from './log-row-source.js';
import { LogBatchPacker, LogPackError, PACK_SLICE_BYTES } from './log-batch-transfer.js';
import type { LogBatchPackerOptions, LogPackJob, PackedBatches } from './log-batch-transfer.js';
import { LogStaging } from './log-staging.js';
import type { StagedEntry, StagedRows } from './log-staging.js';

/** What both writer threads (embedded and PostgreSQL) are given: the appends up to `seq`, one group per pipeline. */
export interface LogItemsMessage {
  type: 'items';
  seq: number;
  pipelineIds: number[];
  body: PackedBatches;
}

/** Options of {@link LogHandOff}. */
export interface LogHandOffOptions {
  /** Rows the queue holds before appends wait for room (backpressure). */
  queueCapacityRows: number;
  /** Longest time queued rows wait before they are handed over (`0`: as soon as the writer asks). */
  handOffDelayMs: number;
  /** Rows queued that are handed over at once, without waiting for `handOffDelayMs`. */
  handOffRows: number;
  /** The hand-off timer's clock, and the time appends begin waiting for room. */
  clock: Clock;
  /** Limits of the batches the packer merges (the writer's caps). */
  packer: LogBatchPackerOptions;
  /** Whether queued rows go over as soon as the writer asks, timer or not (the store is stopping). */
  closing: () => boolean;
  /** Posts the items to the running writer thread, transferring `transfer`. */
  post: (msg: LogItemsMessage, transfer: ArrayBuffer[]) => void;
  /**
   * The queue's `lastSeq` went down: the last append waiting for room could not be admitted
   * (its rows could not be copied; its caller's promise rejects). A stop under way waits for
   * every append up to the last seq, so it must be told fewer come.
   */
  lastSeqLowered?: () => void;
  /**
   * Bytes packed into a message per turn of the event loop: a bigger hand-off (a million-row
   * append) is packed a slice at a time, yielding between slices, and posted once complete.
   * @default PACK_SLICE_BYTES (512 KiB)
   */
  sliceBytes?: number;
  /**
   * Rows an append had acknowledged that could not be read when they were packed (a torn
   * batch kept as it is, a big row source that throws and whose table cannot be built either):
   * they are left out of the message, the rest goes on. Told once per packing that left rows out.
   * @default prints to stderr
   */
  rowsDropped?: (error: LogPackError) => void;
}

/**
 * The front half of an inference log store's hand-off to its writer thread, shared by the
 * embedded store (`InferenceLogStore`) and the PostgreSQL one: the bounded append queue
 * (backpressure counted in rows), the copy of each admitted append's rows into reused
 * buffers ({@link LogStaging}: nothing of a request is kept once it is admitted), the
 * hand-off timer that lets the appends of many requests cross in one message, the packing of
 * those rows into one transferred arena per message (one group per pipeline, rows in order
 * within it), and the rows sent but not yet confirmed written, which a restarted writer
 * thread is given again.
 *
 * The store tells it when a writer thread starts ({@link attach}), ends ({@link detach}), asks
 * for rows ({@link wantsRows}), confirms rows ({@link confirm}) and returns arenas
 * ({@link recycle}); flushes and stops call {@link hurry}.
 */
export class LogHandOff {
  readonly queue: LogAppendQueue;
  readonly #opts: LogHandOffOptions;
  readonly #packer: LogBatchPacker;
  readonly #staging: LogStaging;
  /** Whether a writer thread runs (rows can be posted). */
  #attached = false;
  /** Whether the writer thread asked for rows and none were sent since. */
  #wants = false;
  /** Whether the next admitted append wakes {@link #pump}. */
  #armed = false;
  /** Whether queued rows go to the writer as soon as it asks (a flush, a stop, the timer fired). */
  #urgent = false;
  /** The hand-off timer: queued rows go to the writer when it fires (see `handOffDelayMs`). */
  #timer: TimerHandle | null = null;
  /** Rows sent to the writer thread and not yet confirmed written, per message: sent again if it dies. */
  #unconfirmed: StagedRows[] = [];
  /** Messages to post, in order; the first may be being packed ({@link #job}). */
  #outbox: StagedRows[] = [];
  /** The packing of the outbox's first message, when it takes more than one slice. */
  #job: LogPackJob | null = null;
  /** The turn of the event loop the job's next slice waits for. */
  #resume: NodeJS.Immediate | null = null;
  #packSlices = 0;
  #refusedAppends = 0;

  constructor(options: LogHandOffOptions) {
    this.#opts = options;
    this.#staging = new LogStaging({
      maxRows: options.packer.mergeMaxRows ?? COALESCE_MAX_ROWS,
      maxBytes: options.packer.mergeMaxBytes ?? COALESCE_MAX_BYTES,
    });
    // Admitted rows are copied at once: nothing of the append is kept. Rows that cannot be
    // copied (a row source that throws) are refused alone: the staging rolls them back, and
    // the append rejects with `log_rows_refused`.
    this.queue = new LogAppendQueue(options.queueCapacityRows, (item) => {
      try {
        this.#staging.add(item.pipelineId, item.batches);
      } catch (err) {
        throw this.#refused(
          err instanceof ApiError
            ? err
            : rowsRefused(`reading them failed: ${err instanceof Error ? err.message : String(err)}`, err),
        );
      }
    });
    this.#packer = new LogBatchPacker(options.packer);
  }

  /**
   * Appends refused alone because their rows could not be taken (`log_rows_refused`: rows that
   * do not match their schema, a row source that throws), since the store opened.
   */
  get refusedAppends(): number {
    return this.#refusedAppends;
  }

  /**
   * Admits the rows of one append (see `admitLogRows`) and queues them; resolves once admitted.
   * Rejects with `invalid_request` for a bad pipeline id or schema, and with `log_rows_refused`
   * (counted in {@link refusedAppends}) for rows that cannot be taken: only that append fails,
   * the appends before and after it go on.
   */
  append(pipelineId: number, rows: Table | RecordBatch | LogRowSource): Promise<void> {
    let admitted: ReturnType<typeof admitLogRows>;
    try {
      admitted = admitLogRows(pipelineId, rows);
    } catch (err) {
      const error = err instanceof Error ? err : new Error(String(err));
      return Promise.reject(
        error instanceof ApiError && error.code === 'log_rows_refused' ? this.#refused(error) : error,
      );
    }
    if (admitted.rows === 0) return LOG_APPEND_ADMITTED;
    return this.push(pipelineId, admitted.batches, admitted.rows);
  }

  #refused(err: ApiError): ApiError {
    this.#refusedAppends++;
    return err;
  }

  /** Slices packed so far, one per turn of the event loop at most (for tests and diagnostics). */
  get packSlices(): number {
    return this.#packSlices;
  }

  /** Whether appends were sent that the writer has not confirmed. */
  get hasUnconfirmed(): boolean {
    return this.#unconfirmed.length > 0;
  }

  /**
   * Queues checked, non-empty batches of one append; resolves once admitted (at once when there
   * is room). Many rows queued, or appends waiting for room, hand over without the timer.
   */
  push(pipelineId: number, batches: LogAppendBatch[], rows: number): Promise<void> {
    const queue = this.queue;
    const queued = queue.push(pipelineId, batches, rows, this.#opts.clock.now());
    if (queue.queuedRows >= this.#opts.handOffRows || queue.oldestWaitSince !== null) this.#pump();
    return queued;
  }

  /** Hands what is queued over without waiting for the timer (a flush or stop waits for it). */
  hurry(): void {
    this.#urgent = true;
    this.#clearTimer();
    this.#pump();
  }

  /**
   * A new writer thread runs: it knows no schema yet, and is given again every append an earlier
   * one left unconfirmed. Returns the seq of the last of those (`0` when none).
   */
  attach(): number {
    this.#abandon();
    this.#packer.reset();
    this.#attached = true;
    this.#wants = false;
    for (const staged of this.#unconfirmed) this.#send(staged);
    return this.#unconfirmed.at(-1)?.seq ?? 0;
  }

  /** The writer thread ended: nothing is sent until the next {@link attach}. */
  detach(): void {
    this.#abandon();
    this.#attached = false;
    this.#wants = false;
  }

  /**
   * Drops the messages not posted yet, a packing under way included (its arena goes back to
   * the pool): they are unconfirmed, and the next {@link attach} sends them again.
   */
  #abandon(): void {
    if (this.#resume !== null) clearImmediate(this.#resume);
    this.#resume = null;
    if (this.#job !== null) this.#packer.abandon(this.#job);
    this.#job = null;
    this.#outbox = [];
  }

  /** The writer thread asked for rows: sent now, or when the timer fires or a flush hurries. */
  wantsRows(): void {
    this.#wants = true;
    this.#pump();
  }

  /** Arenas the writer thread no longer reads, for later messages. */
  recycle(arenas: readonly ArrayBuffer[]): void {
    this.#packer.recycle(arenas);
  }

  /** Drops the rows the writer confirmed written up to `seq` (they will not be sent again; their buffers are reused). */
  confirm(seq: number): void {
    const unconfirmed = this.#unconfirmed;
    let n = 0;
    while (n < unconfirmed.length && (unconfirmed[n]?.seq ?? Infinity) <= seq) n++;
    if (n === 0) return;
    for (const staged of unconfirmed.splice(0, n)) this.#staging.release(staged);
  }

  /** Cancels the hand-off timer and a packing under way (at the end of stop). */
  close(): void {
    this.#clearTimer();
    this.#abandon();
  }

  #clearTimer(): void {
    if (this.#timer !== null) {
      this.#opts.clock.clearTimeout(this.#timer);
      this.#timer = null;
    }
  }

  /**
   * Hands the queued appends to the writer thread once it has asked for rows: at once when
   * they are many, a flush or stop waits, or appends wait for room; otherwise once the
   * hand-off timer (armed by the first append queued) fires, so appends that come meanwhile
   * cross with them in one message.
   */
  #pump(): void {
    const queue = this.queue;
    if (!queue.hasItems) {
      this.#urgent = false;
      if (!this.#armed) {
        this.#armed = true;
        void queue.whenItems().then(() => {
          this.#armed = false;
          this.#pump();
        });
      }
      return;
    }
    const now =
      this.#urgent ||
      this.#opts.handOffDelayMs === 0 ||
      this.#opts.closing() ||
      queue.queuedRows >= this.#opts.handOffRows ||
      queue.oldestWaitSince !== null;
    if (!now) {
      this.#timer ??= this.#opts.clock.setTimeout(() => {
        this.#timer = null;
        this.#urgent = true;
        this.#pump();
      }, this.#opts.handOffDelayMs);
      return;
    }
    if (!this.#wants || !this.#attached) {
      // Sent as soon as the writer asks (its `ready`).
      this.#urgent = true;
      return;
    }
    this.#clearTimer();
    this.#urgent = false;
    // Taken before the queue admits waiters, whose rows belong to the next message; kept as
    // unconfirmed before anything else runs, so that no failure after this loses them.
    const staged = this.#staging.take();
    staged.seq = queue.lastAdmittedSeq;
    this.#unconfirmed.push(staged);
    this.#wants = false;
    const lastSeq = queue.lastSeq;
    queue.takeAll();
    this.#send(staged);
    if (queue.lastSeq < lastSeq) this.#opts.lastSeqLowered?.();
  }

  /**
   * Sends staged rows to the writer thread as one group per pipeline (rows keep their order
   * within a pipeline, the only order the log has). Each staged run (many results of one
   * schema, merged as they were admitted) crosses as one batch, so unpacking, schema lookups
   * and merging in the writer are paid per hand-off rather than per request. Messages are
   * posted in order; one of more than `sliceBytes` is packed a slice per turn of the event loop.
   */
  #send(staged: StagedRows): void {
    this.#outbox.push(staged);
    if (this.#job === null && this.#resume === null) this.#drain();
  }

  /** Packs and posts the outbox's messages in order, yielding to the event loop between slices. */
  #drain(): void {
    this.#resume = null;
    const slice = Math.max(1, this.#opts.sliceBytes ?? PACK_SLICE_BYTES);
    while (this.#attached && this.#outbox.length > 0) {
      const staged = this.#outbox[0]!;
      let done: boolean;
      try {
        this.#job ??= this.#packer.begin([...staged.groups.values()]);
        this.#packSlices++;
        done = this.#job.step(slice);
      } catch (err) {
        if (!(err instanceof LogPackError)) throw err;
        // What cannot be read is left out (and told); the message is packed again without it.
        if (this.#job !== null) this.#packer.abandon(this.#job);
        this.#job = null;
        this.#drop(staged, err);
        continue;
      }
      if (!done) {
        this.#resume = setImmediate(() => this.#drain());
        return;
      }
      const body = this.#job.body;
      this.#job = null;
      this.#outbox.shift();
      this.#opts.post({ type: 'items', seq: staged.seq, pipelineIds: [...staged.groups.keys()], body }, [
        body.arena,
        body.meta.buffer as ArrayBuffer,
      ]);
    }
  }

  /**
   * An append was acknowledged before its rows were packed, so what a packing could not read is
   * not given up at once: a row source is packed again from its table (the same rows, by its
   * contract; built only on this failure). What still cannot be read is taken out of `staged`
   * for good and told.
   */
  #drop(staged: StagedRows, err: LogPackError): void {
    const tables = new Map<StagedEntry, RecordBatch[]>();
    const lost = err.entries.filter((entry) => {
      const batches = isLogRowSource(entry) ? batchesOf(entry) : null;
      if (batches !== null) tables.set(entry, batches);
      return batches === null;
    });
    if (tables.size > 0) {
      for (const [pipelineId, group] of staged.groups) {
        staged.groups.set(
          pipelineId,
          group.flatMap((entry) => tables.get(entry) ?? [entry]),
        );
      }
    }
    if (lost.length === 0) return;
    this.#staging.drop(staged, lost);
    (this.#opts.rowsDropped ?? defaultRowsDropped)(
      lost.length === err.entries.length ? err : new LogPackError(lost, err.cause),
    );
  }
}

/** A row source's rows as checked batches of its table, or `null` when they cannot be had. */
function batchesOf(source: LogRowSource): RecordBatch[] | null {
  try {
    const batches = source.toTable().batches.filter((b) => b.numRows > 0);
    for (const b of batches) checkLogBatch(b);
    return batches.reduce((n, b) => n + b.numRows, 0) === source.numRows ? batches : null;
  } catch {
    return null;
  }
}

function defaultRowsDropped(err: LogPackError): void {
  process.stderr.write(`quoll: ${err.message}; those rows are not logged.\n`);
}
