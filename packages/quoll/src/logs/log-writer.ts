import { truncate } from 'node:fs/promises';
import type { RecordBatch } from 'apache-arrow';
import type { Clock, TimerHandle } from '../clock/index.js';
import { ArrowMessageEncoder } from './arrow-message-encoder.js';
import {
  COALESCE_BELOW_ROWS,
  COALESCE_MAX_BYTES,
  COALESCE_MAX_ROWS,
  coalesceLogBatches,
} from './coalesce-log-batches.js';
import { clampLogTime } from './log-batch-checks.js';
import { enforceLogRetention } from './log-segment-files.js';
import type { LogFilesContext } from './log-segment-files.js';
import type { LogSegmentUpdate } from './log-segment-index.js';
import type { FromWriter, LogWriterSettings, SegmentProgress } from './log-writer-protocol.js';
import { OpenSegment } from './open-segment.js';
import { PoisonLogBatchError, rowStep } from './poison-log-batch-error.js';
import { recoverLogSegments } from './recover-log-segments.js';
import { schemaIdOf } from './schema-id.js';
import { segmentPath, sidecarPath, timeValues } from './segment-file.js';

interface PipelineWriteState {
  nextSeq: number;
  /** Latest `time` written, epoch ms as Int64. */
  lastTime: bigint;
  open: OpenSegment | null;
}

/** Appends handed to the writer, in arrival order. */
export interface WriterInput {
  /** Highest append seq among them. */
  seq: number;
  appends: { pipelineId: number; batches: RecordBatch[] }[];
  /** The buffer the batches are views of, handed back (in `ready`) once they are written. */
  arena?: ArrayBuffer;
}

/**
 * The inference log's write loop, run by the writer thread (`log-writer-worker.ts`): takes the
 * appends it is given, merges small consecutive batches of one schema, writes them to each
 * pipeline's open segment, fsyncs at least every `syncIntervalMs` (sooner when a flush
 * waits) and updates the index. A failure does not end it: it repairs what the failed write
 * left, keeps the rows it could not write and retries with backoff (meanwhile it asks for no
 * more rows, so they wait in the owner's bounded queue). It reports through `post`.
 */
export class LogWriter {
  readonly #files: LogFilesContext;
  readonly #settings: LogWriterSettings;
  readonly #clock: Clock;
  readonly #post: (message: FromWriter) => void;
  readonly #encoder = new ArrowMessageEncoder();
  readonly #pipelines = new Map<number, PipelineWriteState>();
  /** Input received and not yet taken into the backlog. */
  #inbox: WriterInput[] = [];
  /** Rows taken and not yet confirmed written, per pipeline, in order. */
  readonly #backlog = new Map<number, RecordBatch[]>();
  /** Highest append seq whose rows are in the backlog. */
  #backlogSeq = 0;
  /** Arenas of the inputs taken, with their seq: handed back once everything up to it is written. */
  #arenas: { seq: number; arena: ArrayBuffer }[] = [];
  /** Segment files to cut back to their confirmed length before recovery (path → bytes). */
  readonly #truncations = new Map<string, number>();
  /** Batch-index entries already reported per open segment. */
  readonly #reported = new WeakMap<OpenSegment, number>();
  /** Highest append seq whose rows are written to the OS. */
  #writtenSeq = 0;
  /** Highest append seq whose rows are fsynced and indexed. */
  #durableSeq = 0;
  /** Highest append seq a flush waits for. */
  #flushSeq = 0;
  #stopping = false;
  /** At stop: the highest append seq still to come. */
  #stopSeq = 0;
  /** The failure being recovered from; `null` while writes succeed. */
  #down: Error | null = null;
  #lastSyncAt: number;
  /** Ends the current wait (input, flush, stop, timer). */
  #wake: (() => void) | null = null;
  /**
   * Pipelines whose rows failed by themselves ({@link PoisonLogBatchError}): their backlog is
   * written next one batch at a time, unmerged, and a batch that fails so is set aside.
   */
  readonly #isolate = new Set<number>();

  constructor(
    files: LogFilesContext,
    settings: LogWriterSettings,
    clock: Clock,
    post: (message: FromWriter) => void,
  ) {
    this.#files = files;
    this.#settings = settings;
    this.#clock = clock;
    this.#post = post;
    this.#lastSyncAt = clock.now();
    this.#backlogSeq = settings.startSeq;
    this.#writtenSeq = settings.startSeq;
    this.#durableSeq = settings.startSeq;
  }

  /** Takes appends (kept until written, also across failed attempts). */
  give(input: WriterInput): void {
    this.#inbox.push(input);
    this.#wakeUp();
  }

  /** Syncs soon: a caller waits for every append up to `seq`. */
  flush(seq: number): void {
    this.#flushSeq = Math.max(this.#flushSeq, seq);
    this.#wakeUp();
  }

  /**
   * Stops once every append up to `lastSeq` has come and is written: syncs, seals every
   * segment and ends {@link run}. A later call may lower `lastSeq` (appends refused meanwhile).
   */
  stop(lastSeq: number): void {
    this.#stopping = true;
    this.#stopSeq = lastSeq;
    this.#wakeUp();
  }

  /** Whether stop was asked and every append it waits for has been taken. */
  get #allTaken(): boolean {
    return this.#stopping && this.#inbox.length === 0 && this.#backlogSeq >= this.#stopSeq;
  }

  /** Runs until stopped; resolves `true` when everything was sealed, `false` when writes failed at stop. */
  async run(): Promise<boolean> {
    let failures = 0;
    let stopFailures = 0;
    for (;;) {
      try {
        if (this.#down !== null) {
          await this.#repair();
          await this.#writeBacklog();
          this.#down = null;
          failures = 0;
          this.#post({ type: 'recovered' });
        }
        if (await this.#step()) return true;
      } catch (err) {
        if (err instanceof PoisonLogBatchError && !this.#isolate.has(err.pipelineId)) {
          // Not a disk failure: retrying the same rows would fail forever and hold every
          // pipeline's log. Repair at once and write that pipeline's batches one by one.
          this.#isolate.add(err.pipelineId);
          this.#down = err;
          continue;
        }
        const error = err instanceof Error ? err : new Error(String(err));
        this.#down = error;
        failures++;
        const base = {
          type: 'write-failed',
          message: error.message,
          stack: error.stack ?? error.message,
          attempt: failures,
        } as const;
        if (this.#stopping && ++stopFailures >= this.#settings.stopAttempts) {
          this.#post({ ...base, retryInMs: null });
          for (const st of this.#pipelines.values()) await st.open?.close();
          return false;
        }
        const delay = Math.min(
          this.#settings.maxRetryDelayMs,
          this.#settings.retryDelayMs * 2 ** (failures - 1),
        );
        this.#post({ ...base, retryInMs: delay });
        await this.#wait(this.#stopping ? Math.min(delay, this.#settings.retryDelayMs) : delay, true);
      }
    }
  }

  /** One turn of the loop; `true` once stopped with everything sealed. */
  async #step(): Promise<boolean> {
    if (this.#inbox.length > 0) {
      this.#take();
      await this.#writeBacklog();
      if (this.#syncDue()) await this.#sync();
      return false;
    }
    if (this.#writtenSeq > this.#durableSeq && (this.#syncDue() || this.#stopping)) {
      await this.#sync();
      return false;
    }
    if (this.#allTaken) {
      await this.#sealAll();
      this.#durableSeq = this.#writtenSeq;
      this.#post({ type: 'durable', seq: this.#durableSeq, segments: [] });
      return true;
    }
    this.#post({
      type: 'ready',
      writtenSeq: this.#writtenSeq,
      segments: this.#progress(),
      arenas: this.#writtenArenas(),
    });
    const unsynced = this.#writtenSeq > this.#durableSeq;
    await this.#wait(
      unsynced ? this.#lastSyncAt + this.#settings.syncIntervalMs - this.#clock.now() : null,
      false,
    );
    return false;
  }

  #wakeUp(): void {
    const fn = this.#wake;
    this.#wake = null;
    fn?.();
  }

  /**
   * Waits for input, a flush that has rows to sync, or stop, or `ms` (`null`: no timer).
   * A retry wait (`retry`) ends only at its timer, or early when stop comes during it.
   */
  async #wait(ms: number | null, retry: boolean): Promise<void> {
    const wasStopping = this.#stopping;
    const due = (): boolean =>
      retry
        ? this.#stopping && !wasStopping
        : this.#allTaken ||
          this.#inbox.length > 0 ||
          (this.#flushSeq > this.#durableSeq && this.#writtenSeq > this.#durableSeq);
    if (due()) return;
    await new Promise<void>((resolve) => {
      let timer: TimerHandle | null = null;
      const finish = (): void => {
        if (timer !== null) this.#clock.clearTimeout(timer);
        this.#wake = null;
        resolve();
      };
      const check = (): void => {
        if (due()) finish();
        else this.#wake = check;
      };
      this.#wake = check;
      if (ms !== null) timer = this.#clock.setTimeout(finish, Math.max(0, ms));
    });
  }

  #syncDue(): boolean {
    return (
      this.#flushSeq > this.#durableSeq ||
      this.#clock.now() - this.#lastSyncAt >= this.#settings.syncIntervalMs
    );
  }

  /**
   * The arenas whose batches are all written: the writes are synchronous and nothing keeps a
   * view of a batch once its pipeline's backlog is written, so they can be reused.
   */
  #writtenArenas(): ArrayBuffer[] {
    let n = 0;
    while (n < this.#arenas.length && this.#arenas[n]!.seq <= this.#writtenSeq) n++;
    return n === 0 ? [] : this.#arenas.splice(0, n).map((a) => a.arena);
  }

  /** Moves the inbox into the per-pipeline backlog. */
  #take(): void {
    for (const input of this.#inbox) {
      if (input.arena !== undefined) this.#arenas.push({ seq: input.seq, arena: input.arena });
      for (const a of input.appends) {
        const list = this.#backlog.get(a.pipelineId);
        if (list === undefined) this.#backlog.set(a.pipelineId, [...a.batches]);
        else for (const b of a.batches) list.push(b);
      }
      this.#backlogSeq = input.seq;
    }
    this.#inbox = [];
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
    if (sealedPipelines.size > 0) await enforceLogRetention(this.#files, this.#settings, sealedPipelines);
  }

  /**
   * Writes one pipeline's backlog and removes it. On a failure, leaves in the backlog exactly
   * the batches that are not confirmed in the file (so a retry neither loses nor repeats rows)
   * and rethrows. Returns whether a segment was sealed (rolled).
   */
  async #writePipeline(pipelineId: number, batches: RecordBatch[]): Promise<boolean> {
    const st = await this.#pipelineState(pipelineId);
    const { segmentMaxRows, segmentMaxBytes } = this.#settings;
    const isolate = this.#isolate.has(pipelineId);
    // A merged batch stays within a segment's caps, so segments still roll where configured.
    // Isolated, nothing is merged: a batch that cannot be written then fails alone.
    // How many of `batches` each merged batch holds (all 1 when isolated).
    const sources: number[] = [];
    const merged = isolate
      ? batches
      : rowStep(pipelineId, () => {
          return coalesceLogBatches(
            batches,
            COALESCE_BELOW_ROWS,
            Math.min(COALESCE_MAX_ROWS, segmentMaxRows),
            Math.min(COALESCE_MAX_BYTES, segmentMaxBytes / 2),
            sources,
          );
        });
    if (isolate) for (let i = 0; i < batches.length; i++) sources.push(1);
    // Index in `batches` of the first batch each merged batch holds.
    const starts: number[] = [];
    for (let k = 0, at = 0; k < merged.length; at += sources[k]!, k++) starts.push(at);
    const originalsOf = (k: number): RecordBatch[] => batches.slice(starts[k], starts[k]! + sources[k]!);
    // Each staged batch (its index in `merged`), with its segment and its position there: it is
    // in the file once the segment's batch index counts past that position.
    const placed: { k: number; seg: OpenSegment; pos: number }[] = [];
    // Merged batches handled (placed or set aside): the next one to write is `merged[done]`.
    let done = 0;
    let sealed = false;
    try {
      for (; done < merged.length; done++) {
        const original = merged[done]!;
        let prepared;
        try {
          prepared = rowStep(pipelineId, () => {
            const clamped = clampLogTime(original, st.lastTime);
            const t = timeValues(clamped.batch);
            return {
              ...clamped,
              schemaId: schemaIdOf(clamped.batch.schema),
              msg: this.#encoder.encodeBatch(clamped.batch),
              firstTime: Number(t[0]),
            };
          });
        } catch (err) {
          if (!isolate || !(err instanceof PoisonLogBatchError)) throw err;
          this.#setAside(pipelineId, original, err);
          continue;
        }
        const { batch, last, schemaId, msg, firstTime } = prepared;
        st.lastTime = last;
        let seg = st.open;
        if (
          seg !== null &&
          (seg.schemaId !== schemaId ||
            (seg.plannedRows > 0 &&
              (seg.plannedRows + batch.numRows > segmentMaxRows ||
                seg.plannedBytes + msg.bytes + 8 > segmentMaxBytes)))
        ) {
          // Roll: a segment holds one schema and stays under its size caps.
          await this.#seal(st, seg);
          sealed = true;
          seg = null;
        }
        if (seg === null) {
          const seq = st.nextSeq++;
          // Index row first: a file never exists without a row (orphans are swept at open).
          await this.#files.index.addSegment({ pipelineId, seq, schemaId, createdAt: this.#clock.now() });
          seg = await OpenSegment.create(
            {
              pipelineId,
              seq,
              schemaId,
              schema: batch.schema,
              path: segmentPath(this.#files.root, pipelineId, seq),
            },
            this.#encoder.encodeSchema(batch.schema).chunks,
          );
          st.open = seg;
        }
        placed.push({ k: done, seg, pos: seg.index.count + seg.stagedBatches });
        seg.stage(msg.chunks, msg.bytes, batch.numRows, firstTime, Number(last));
      }
      await st.open?.writeStaged();
    } catch (err) {
      const firstUnwritten = placed.findIndex((p) => p.seg.index.count <= p.pos);
      const from = firstUnwritten === -1 ? placed.length : firstUnwritten;
      // Back go the batches as they were handed (unmerged, so an isolated retry sets aside only
      // the bad one): those staged but not in the file, then those not yet handled. Batches
      // already set aside are not among them.
      const unwritten = [...placed.slice(from).map((p) => p.k)];
      for (let k = done; k < merged.length; k++) unwritten.push(k);
      this.#backlog.set(pipelineId, unwritten.flatMap(originalsOf));
      throw err;
    }
    this.#backlog.delete(pipelineId);
    this.#isolate.delete(pipelineId);
    return sealed;
  }

  /** Drops a batch that cannot be written (only it: its pipeline's other batches are written) and tells the owner. */
  #setAside(pipelineId: number, batch: RecordBatch, err: PoisonLogBatchError): void {
    const cause = err.cause instanceof Error ? err.cause : err;
    this.#post({
      type: 'quarantined',
      pipelineIds: [pipelineId],
      rows: batch.numRows,
      message: err.message,
      stack: cause.stack ?? cause.message,
    });
  }

  async #seal(st: PipelineWriteState, seg: OpenSegment): Promise<void> {
    const update = await seg.seal(sidecarPath(this.#files.root, seg.pipelineId, seg.seq));
    // The owner reads a sealed segment from its file and sidecar from here on.
    await this.#files.index.updateSegments([update]);
    if (st.open === seg) st.open = null;
  }

  /** fsyncs every open segment with new bytes, updates the index, and reports what is durable. */
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
    this.#post({ type: 'durable', seq: target, segments: this.#progress() });
  }

  /** Batch-index entries added to open segments since the last report. */
  #progress(): SegmentProgress[] {
    const out: SegmentProgress[] = [];
    for (const st of this.#pipelines.values()) {
      const seg = st.open;
      if (seg === null) continue;
      const sent = this.#reported.get(seg);
      const n = seg.index.count;
      if (sent === n) continue;
      const from = sent ?? 0;
      const entries = new Float64Array((n - from) * 5);
      for (let b = from, k = 0; b < n; b++, k += 5) {
        entries[k] = seg.index.offset(b);
        entries[k + 1] = seg.index.length(b);
        entries[k + 2] = seg.index.rowCount(b);
        entries[k + 3] = seg.index.firstTime(b);
        entries[k + 4] = seg.index.lastTime(b);
      }
      this.#reported.set(seg, n);
      out.push({
        pipelineId: seg.pipelineId,
        seq: seg.seq,
        schemaId: seg.schemaId,
        schemaMessage: sent === undefined ? seg.schemaMessage : null,
        from,
        entries,
      });
    }
    return out;
  }

  async #sealAll(): Promise<void> {
    const sealed: number[] = [];
    for (const [pipelineId, st] of this.#pipelines) {
      if (st.open !== null) {
        await this.#seal(st, st.open);
        sealed.push(pipelineId);
      }
    }
    if (sealed.length > 0) await enforceLogRetention(this.#files, this.#settings, sealed);
  }
}
