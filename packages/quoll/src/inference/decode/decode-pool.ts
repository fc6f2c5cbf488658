import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { MEDIA_TYPES } from '@quoll/client/wire';
import { ApiError, fromErrorOutcome, isErrorOutcome } from '../../errors/index.js';
import { formatOfMediaType, parseRecords, readArrowLayout } from '../inference-input.js';
import type { EngineInput, InferenceInput } from '../inference-input.js';
import { FeedSlab } from '../feed-slab.js';
import { readOpenInferenceBody } from '../open-inference-codec.js';
import type { OpenInferenceBody } from '../open-inference-codec.js';
import { DECODE_PROTOCOL_VERSION } from './decode-protocol.js';
import type { DecodeFormat, DecodeReply, DecodeRequest, DecodeSuccess } from './decode-protocol.js';
import { WalkBudget, WalkBudgetExceeded } from './flat-table.js';
import { tableFromLayout } from './table-from-layout.js';
import { fromTransferredTable } from './transferred-table.js';

/** Options of {@link DecodePool}. */
export interface DecodePoolOptions {
  /** Decode worker threads. @default 1 */
  workers?: number;
  /** The deadline of one decode, before the per-MiB allowance. @default 2000 */
  deadlineMs?: number;
  /** Deadline added per MiB of body (a large JSON body takes about 65 ms per MiB to parse). @default 200 */
  deadlineMsPerMiB?: number;
  /**
   * JSON bodies (Quoll's records, Open Inference bodies) up to this size are parsed on the
   * calling thread: parsing them is bounded (about 1 ms) and cheaper than a thread hop. Larger
   * ones and every Arrow body go to a worker.
   * @default 65536
   */
  inlineJsonBytes?: number;
  /**
   * {@link DecodePool.decodeForModelWorker}: JSON records bodies up to this size (over
   * `inlineJsonBytes`) are decoded by the model worker that runs them, which saves the thread
   * hop to a decode worker. The parse's objects are about ten times the body (bodies nested
   * deeper than records can be are refused from their bytes first), so this bounds what one
   * decode holds in a model worker, which has no heap cap of its own. Larger ones go to a
   * decode worker (byte scanner, heap cap).
   * @default 1048576
   */
  modelWorkerJsonBytes?: number;
  /**
   * An Arrow body's framing is walked on the calling thread when the walk takes at most this
   * many steps (a table read, a node, a buffer or a block each; 64 list offsets): the walk never
   * touches the values, so for an ordinary body of any size it is a few dozen steps (a few
   * microseconds), far cheaper than a thread hop. A body whose metadata needs more (or points
   * at the same tables over and over) is walked again in a worker, under the deadline, as if
   * the inline walk had never started. 0 sends every Arrow body to a worker. At 512 the walk
   * stops within about 0.3 ms on this machine class (0.4–0.7 µs a step, measured on a loaded
   * 2-core machine); a one-column body of any row count takes 13–14 steps.
   * @default 512
   */
  inlineArrowSteps?: number;
  /** The V8 old-generation cap of each worker in MiB: a body that needs more fails alone (413). @default 2048 */
  workerMemoryMiB?: number;
}

interface Job {
  format: DecodeFormat;
  body: Uint8Array;
  headerLength: string | undefined;
  deadlineMs: number;
  resolve(reply: DecodeSuccess): void;
  reject(error: Error): void;
}

/** A job sent to a worker, under the id its reply carries. */
interface Sent {
  job: Job;
  id: number;
}

interface Slot {
  worker: Worker;
  /**
   * Jobs sent and not yet answered, in the order the worker takes them: one body, or several
   * small ones sent in one message (as copies) while the worker was busy, so that under load
   * one wake-up of each thread serves many requests. Each is answered on its own.
   */
  sent: Sent[];
  /** The deadline of the first job sent (started when it reached the front). */
  timer: NodeJS.Timeout | null;
  /** The worker has loaded its script (jobs and their deadlines start only then). */
  ready: boolean;
}

/** Most bodies sent to a worker in one message. */
const MAX_BATCH = 32;
/** Bodies up to this size may share a message (copied, so they can be sent again). */
const MAX_BATCHED_BODY_BYTES = 64 * 1024;

/**
 * Decodes inference bodies (Arrow IPC, large JSON records, large Open Inference bodies) in worker threads, one body per worker at a
 * time, each under a deadline: a decode that runs past it is answered `input_decode_timeout`,
 * its worker terminated and replaced. A worker that runs out of its memory cap answers
 * `payload_too_large`. What stays on the calling thread is bounded before it starts: JSON up to
 * `inlineJsonBytes`, and the framing walk of an Arrow body when it fits `inlineArrowSteps`
 * (the same checks; a walk that needs more is handed to a worker). The event loop otherwise
 * only builds the columns as views of the body, so no body can stall it.
 *
 * @example
 * const pool = new DecodePool();
 * const input = await pool.decode('application/vnd.apache.arrow.file', body);
 * await pool.close();
 */
export class DecodePool {
  readonly #options: Required<DecodePoolOptions>;
  readonly #slots: Slot[] = [];
  readonly #queue: Job[] = [];
  #nextId = 1;
  #closed = false;
  #replaced = 0;
  /** Where the values of small Open Inference inputs read on the calling thread are carved from. */
  readonly #openInferenceSlab = new FeedSlab();

  constructor(options: DecodePoolOptions = {}) {
    this.#options = {
      workers: Math.max(1, options.workers ?? 1),
      deadlineMs: Math.max(1, options.deadlineMs ?? 2000),
      deadlineMsPerMiB: Math.max(0, options.deadlineMsPerMiB ?? 200),
      inlineJsonBytes: Math.max(0, options.inlineJsonBytes ?? 64 * 1024),
      modelWorkerJsonBytes: Math.max(0, options.modelWorkerJsonBytes ?? 2 ** 20),
      inlineArrowSteps: Math.max(0, options.inlineArrowSteps ?? 512),
      workerMemoryMiB: Math.max(16, options.workerMemoryMiB ?? 2048),
    };
  }

  /** Live worker threads (started on first use). */
  get workerCount(): number {
    return this.#slots.length;
  }

  /** Workers terminated and replaced after a decode ran past its deadline or died. */
  get replacedWorkers(): number {
    return this.#replaced;
  }

  /**
   * Decodes an inference body: `application/json` records, an Arrow IPC file or stream.
   * The body's memory may be handed to a worker (do not use it afterwards).
   * @throws ApiError `unsupported_media_type`, `invalid_inference_input` (and the other input
   * codes), `input_decode_timeout`, `payload_too_large`, `shutting_down`
   */
  decode(contentType: string, body: Uint8Array): Promise<InferenceInput> {
    const format = formatOfMediaType(contentType);
    if (format === null) {
      const sent = contentType.split(';', 1)[0]?.trim().slice(0, 100) || 'none';
      return Promise.reject(
        new ApiError(
          'unsupported_media_type',
          `Content-Type "${sent}" is not accepted; send ${MEDIA_TYPES.json} (records), ${MEDIA_TYPES.arrowFile} or ${MEDIA_TYPES.arrowStream}.`,
          { contentType: sent },
        ),
      );
    }
    if (format === 'json' && body.byteLength <= this.#options.inlineJsonBytes) {
      try {
        return Promise.resolve({ kind: 'records', records: parseRecords(body) });
      } catch (error) {
        return Promise.reject(error instanceof Error ? error : new Error(String(error)));
      }
    }
    if (format !== 'json' && this.#options.inlineArrowSteps > 0) {
      const inline = this.#arrowInline(body);
      if (inline !== null) return inline;
    }
    return this.#decodeInWorker(format === 'json' ? 'json' : 'arrow', body);
  }

  /** A JSON or Arrow body decoded by a decode worker, under its deadline. */
  #decodeInWorker(format: 'json' | 'arrow', body: Uint8Array): Promise<InferenceInput> {
    return this.#submit(format, body, undefined).then((reply) => {
      try {
        if (reply.kind === 'arrow-layout')
          // A body copied to the worker is still ours; a moved one came back.
          return { kind: 'arrow', table: tableFromLayout(reply.body ?? body, reply.layout) };
        if (reply.kind === 'arrow') return { kind: 'arrow', table: fromTransferredTable(reply.table) };
      } catch {
        throw new ApiError('invalid_inference_input', 'The body decodes to columns Quoll cannot read.');
      }
      throw internal();
    });
  }

  /**
   * A JSON records body of at most `inlineJsonBytes`, parsed on the calling thread as
   * {@link decode} and {@link decodeForModelWorker} parse it, without a promise (at JSON batch 1
   * the promise and its await were a measurable part of a request); `undefined` for any other
   * body, which those decode.
   * @throws ApiError `invalid_inference_input`, as they reject
   */
  decodeJsonInline(contentType: string, body: Uint8Array): InferenceInput | undefined {
    return formatOfMediaType(contentType) === 'json' ? this.#jsonInline(body) : undefined;
  }

  /** JSON records of at most `inlineJsonBytes`, read on this thread; `undefined` for a larger body. */
  #jsonInline(body: Uint8Array): InferenceInput | undefined {
    return body.byteLength <= this.#options.inlineJsonBytes
      ? { kind: 'records', records: parseRecords(body) }
      : undefined;
  }

  /**
   * The input at once, without a promise, when the calling thread reads the body itself: JSON
   * records of at most `inlineJsonBytes` ({@link decodeJsonInline}) and an Arrow body whose
   * framing walk fits `inlineArrowSteps` (the same walk and table as {@link decode}'s, the same
   * errors). At Arrow batch 1000 the promise, its `then` and the await were a part of every
   * request on the HTTP thread. An Arrow body whose walk ran out of steps is not walked here
   * again: its decode worker's answer comes back (a promise, as {@link decode}'s), since
   * {@link decode} would repeat the whole budgeted walk before handing the body over.
   * `undefined` for any other body (then {@link decode} or {@link decodeForModelWorker} reads
   * it, or refuses its media type).
   * @throws ApiError as {@link decode} rejects
   */
  decodeInline(contentType: string, body: Uint8Array): InferenceInput | Promise<InferenceInput> | undefined {
    const format = formatOfMediaType(contentType);
    if (format === 'json') return this.#jsonInline(body);
    if (format === null || this.#options.inlineArrowSteps === 0) return undefined;
    return this.#arrowInlineNow(body) ?? this.#decodeInWorker('arrow', body);
  }

  /**
   * As {@link decode}, except that JSON records over the inline size and up to
   * `modelWorkerJsonBytes` are left undecoded (`UndecodedRecords`) for the model worker
   * that runs the request: it decodes them with the same checks, under the same deadline, so
   * the request crosses to no third thread.
   * @throws ApiError as {@link decode}
   */
  decodeForModelWorker(contentType: string, body: Uint8Array): Promise<EngineInput> {
    if (
      this.#closed ||
      body.byteLength <= this.#options.inlineJsonBytes ||
      body.byteLength > this.#options.modelWorkerJsonBytes ||
      formatOfMediaType(contentType) !== 'json'
    )
      return this.decode(contentType, body);
    return Promise.resolve({ kind: 'undecoded-records', body, deadlineMs: this.#deadlineOf(body) });
  }

  /** The deadline of one body's decode: the base plus the per-MiB allowance. */
  #deadlineOf(body: Uint8Array): number {
    return this.#options.deadlineMs + Math.ceil((body.byteLength / 2 ** 20) * this.#options.deadlineMsPerMiB);
  }

  /**
   * An Arrow body walked on the calling thread within the step budget, its answer (the table,
   * or the walk's catalogue error); null when the walk ran out of steps (the worker walks it).
   */
  #arrowInline(body: Uint8Array): Promise<InferenceInput> | null {
    try {
      const input = this.#arrowInlineNow(body);
      return input === undefined ? null : Promise.resolve(input);
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
  }

  /**
   * {@link #arrowInline} without a promise: the table, `undefined` when the walk ran out of
   * steps; throws the walk's catalogue error.
   */
  #arrowInlineNow(body: Uint8Array): InferenceInput | undefined {
    let layout;
    try {
      layout = readArrowLayout(body, new WalkBudget(this.#options.inlineArrowSteps));
    } catch (error) {
      if (error instanceof WalkBudgetExceeded) return undefined;
      throw error;
    }
    try {
      return { kind: 'arrow', table: tableFromLayout(body, layout) };
    } catch {
      // As for a body walked in a worker.
      throw new ApiError('invalid_inference_input', 'The body decodes to columns Quoll cannot read.');
    }
  }

  /**
   * Reads an Open Inference Protocol body (its JSON part, and binary tensors after
   * `headerLength` bytes when given); bodies over the inline size in a worker, under a deadline.
   * The body's memory may be handed to a worker (do not use it afterwards).
   * @throws ApiError the codec's input errors, `input_decode_timeout`, `payload_too_large`, `shutting_down`
   */
  decodeOpenInference(body: Uint8Array, headerLength: string | undefined): Promise<OpenInferenceBody> {
    if (body.byteLength <= this.#options.inlineJsonBytes) {
      try {
        return Promise.resolve(readOpenInferenceBody(body, headerLength, this.#openInferenceSlab));
      } catch (error) {
        return Promise.reject(error instanceof Error ? error : new Error(String(error)));
      }
    }
    return this.#submit('open-inference', body, headerLength).then((reply) => {
      if (reply.kind !== 'open-inference') throw internal();
      return reply.body;
    });
  }

  /**
   * An Open Inference body of at most `inlineJsonBytes` read at once on the calling thread, as
   * {@link decodeOpenInference} reads it, without a promise; `undefined` for a larger body. Its
   * small inputs' values are carved out of a slab of this pool's (see `readOpenInferenceBody`).
   * @throws ApiError as {@link decodeOpenInference} rejects
   */
  decodeOpenInferenceInline(
    body: Uint8Array,
    headerLength: string | undefined,
  ): OpenInferenceBody | undefined {
    return body.byteLength <= this.#options.inlineJsonBytes
      ? readOpenInferenceBody(body, headerLength, this.#openInferenceSlab)
      : undefined;
  }

  #submit(format: DecodeFormat, body: Uint8Array, headerLength: string | undefined): Promise<DecodeSuccess> {
    if (this.#closed) {
      return Promise.reject(
        new ApiError('shutting_down', 'The server is stopping; it decodes no more requests.'),
      );
    }
    const deadlineMs = this.#deadlineOf(body);
    return new Promise<DecodeSuccess>((resolve, reject) => {
      this.#queue.push({ format, body, headerLength, deadlineMs, resolve, reject });
      this.#pump();
    });
  }

  /** Stops every worker; queued and running decodes are refused with `shutting_down`. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    const stopping = new ApiError('shutting_down', 'The server is stopping; it decodes no more requests.');
    for (const job of this.#queue.splice(0)) job.reject(stopping);
    const slots = this.#slots.splice(0);
    await Promise.all(
      slots.map(async (slot) => {
        for (const job of this.#takeAll(slot)) job.reject(stopping);
        await slot.worker.terminate();
      }),
    );
  }

  #pump(): void {
    while (this.#queue.length > 0 && !this.#closed) {
      const slot = this.#slots.find((candidate) => candidate.ready && candidate.sent.length === 0);
      if (!slot) {
        if (this.#slots.length < this.#options.workers) this.#spawn();
        return;
      }
      // The small bodies waiting at the front go together, in one message: under load one
      // wake-up of the worker serves many requests.
      const jobs = [this.#queue.shift()!];
      if (jobs[0]!.body.byteLength <= MAX_BATCHED_BODY_BYTES) {
        while (
          jobs.length < MAX_BATCH &&
          this.#queue.length > 0 &&
          this.#queue[0]!.body.byteLength <= MAX_BATCHED_BODY_BYTES
        ) {
          jobs.push(this.#queue.shift()!);
        }
      }
      this.#dispatch(slot, jobs);
    }
  }

  #spawn(): void {
    const slot: Slot = {
      worker: spawnDecodeWorker(this.#options.workerMemoryMiB),
      sent: [],
      timer: null,
      ready: false,
    };
    slot.worker.on('message', (reply: DecodeReply) => {
      if (reply.v !== DECODE_PROTOCOL_VERSION) return;
      if ('ready' in reply) {
        slot.ready = true;
        this.#pump();
        return;
      }
      // The worker answers in the order it was sent; anything else is stale.
      if (slot.sent[0]?.id !== reply.id) return;
      const job = this.#finishFirst(slot)!;
      if (reply.ok) {
        job.resolve(reply);
      } else {
        job.reject(isErrorOutcome(reply.error) ? fromErrorOutcome(reply.error) : internal());
      }
      this.#pump();
    });
    // A worker that dies (out of its memory cap, or a crash) fails only the decode it was
    // running (the jobs queued behind it are sent again); one that cannot even start fails the
    // queue instead of being restarted in a loop.
    slot.worker.on('error', (error: Error & { code?: string }) => {
      const job = this.#finishFirst(slot);
      this.#requeue(slot);
      this.#replace(slot);
      if (!slot.ready) {
        for (const queued of this.#queue.splice(0)) queued.reject(internal());
        return;
      }
      job?.reject(
        error.code === 'ERR_WORKER_OUT_OF_MEMORY'
          ? new ApiError(
              'payload_too_large',
              `The body needs more than the ${this.#options.workerMemoryMiB} MiB a decode may use; send fewer rows per request.`,
            )
          : internal(),
      );
      this.#pump();
    });
    slot.worker.on('exit', () => {
      if (this.#slots.includes(slot)) {
        const job = this.#finishFirst(slot);
        this.#requeue(slot);
        this.#replace(slot);
        job?.reject(internal());
        if (slot.ready) this.#pump();
        else for (const queued of this.#queue.splice(0)) queued.reject(internal());
      }
    });
    this.#slots.push(slot);
  }

  #dispatch(slot: Slot, jobs: Job[]): void {
    // Move a lone body when it owns its whole buffer. Several bodies in one message are copied
    // (if one of them is abandoned, the ones after it are sent again), and so is a slice of a
    // shared buffer (small bodies come from Node's buffer pool).
    const lone = jobs.length === 1 ? jobs[0]!.body : null;
    const moved =
      lone !== null &&
      lone.buffer instanceof ArrayBuffer &&
      lone.byteOffset === 0 &&
      lone.byteLength === lone.buffer.byteLength &&
      lone.byteLength > 0;
    const requests = jobs.map((job): DecodeRequest => {
      const id = this.#nextId++;
      slot.sent.push({ job, id });
      return {
        v: DECODE_PROTOCOL_VERSION,
        id,
        format: job.format,
        body: job.body,
        headerLength: job.headerLength,
        moved,
      };
    });
    this.#startDeadline(slot);
    if (requests.length > 1) slot.worker.postMessage(requests);
    else slot.worker.postMessage(requests[0], moved ? [lone.buffer] : []);
  }

  /** Starts the deadline of the job at the front of a worker's queue. */
  #startDeadline(slot: Slot): void {
    const first = slot.sent[0];
    if (first === undefined) return;
    slot.timer = setTimeout(() => this.#expire(slot), first.job.deadlineMs);
    slot.timer.unref();
  }

  #expire(slot: Slot): void {
    const job = this.#finishFirst(slot);
    if (!job) return;
    this.#requeue(slot);
    this.#replace(slot);
    job.reject(
      new ApiError(
        'input_decode_timeout',
        `The body was not decoded within ${job.deadlineMs} ms, so it was abandoned; it is most likely corrupt. Send an Arrow IPC file or stream (or JSON records) as an Arrow or JSON library writes them.`,
        { deadlineMs: job.deadlineMs },
      ),
    );
    this.#pump();
  }

  /** Takes the job at the front of a worker's queue, clearing its deadline (the next one's starts). */
  #finishFirst(slot: Slot): Job | null {
    if (slot.timer !== null) clearTimeout(slot.timer);
    slot.timer = null;
    const first = slot.sent.shift();
    if (slot.sent.length > 0) this.#startDeadline(slot);
    return first?.job ?? null;
  }

  /** Takes every job of a worker (for shutdown). */
  #takeAll(slot: Slot): Job[] {
    if (slot.timer !== null) clearTimeout(slot.timer);
    slot.timer = null;
    return slot.sent.splice(0).map((sent) => sent.job);
  }

  /** Puts the jobs queued in a worker that is being replaced back at the front of the queue. */
  #requeue(slot: Slot): void {
    this.#queue.unshift(...this.#takeAll(slot));
  }

  /** Terminates a slot's worker (without waiting) and drops the slot; the next job spawns a fresh one. */
  #replace(slot: Slot): void {
    const index = this.#slots.indexOf(slot);
    if (index === -1) return;
    this.#slots.splice(index, 1);
    this.#replaced++;
    void slot.worker.terminate();
  }
}

function internal(): ApiError {
  return new ApiError('internal_error', 'Internal server error; the server log has the details.');
}

/**
 * Starts `decode-worker.js` beside this file. From TypeScript sources (vitest, tsx) only the
 * `.ts` exists; the worker then registers tsx itself before importing it.
 */
function spawnDecodeWorker(memoryMiB: number): Worker {
  const resourceLimits = { maxOldGenerationSizeMb: memoryMiB };
  const compiled = new URL('./decode-worker.js', import.meta.url);
  if (existsSync(fileURLToPath(compiled))) return new Worker(compiled, { resourceLimits });
  const source = new URL('./decode-worker.ts', import.meta.url);
  if (!import.meta.url.endsWith('.ts') || !existsSync(fileURLToPath(source))) {
    throw new Error(
      `The decode worker script is missing: ${fileURLToPath(compiled)}. Build the quoll package.`,
    );
  }
  const manifestPath = createRequire(import.meta.url).resolve('tsx/package.json');
  const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as {
    exports?: Record<string, { import?: { default?: string } }>;
  };
  const entry = manifest.exports?.['./esm/api']?.import?.default ?? './dist/esm/api/index.mjs';
  const tsxApi = pathToFileURL(join(dirname(manifestPath), entry)).href;
  const bootstrap = `import(${JSON.stringify(tsxApi)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(source.href)}); });`;
  return new Worker(bootstrap, { eval: true, resourceLimits });
}
