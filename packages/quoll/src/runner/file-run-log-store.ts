import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { mkdirSync } from 'node:fs';
import { open, readdir, rename, stat } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { TaskRunLogLineDto } from '@quoll/client/wire';
import { formatBytes } from './format-bytes.js';
import { CLOSING_ROOM, QueuedRunLogWriter } from './queued-run-log-writer.js';
import type { QueuedRunLogLine, StoredRunLogLine } from './queued-run-log-writer.js';
import type { RunEnded, RunLogStore, RunLogWriter } from './run-log-store.js';

/** One line of a run's log file (`<logsDir>/<runId>.log`, one JSON object per line). */
type StoredLine = StoredRunLogLine;

/** Options of {@link FileRunLogStore}. */
export interface FileRunLogStoreOptions {
  /** Directory holding `<runId>.log` files; created if missing. */
  dir: string;
  /**
   * Most bytes one run's log may take: past it, further lines are dropped and counted, and
   * the log says so (when the cap is reached, and how much was dropped before the final line).
   * @default 64 MiB
   */
  maxBytesPerRun?: number;
  /**
   * Most bytes all run logs may take: past it, the oldest finished runs' logs are replaced by
   * a note and their final line. Logs of running runs are never removed.
   * @default 10 GiB
   */
  maxBytesTotal?: number;
  /** Where write failures are reported. @default console.error */
  onError?: (err: unknown, context: string) => void;
}

/** The default per-run cap: 64 MiB. */
export const DEFAULT_RUN_LOG_MAX_BYTES = 64 * 1024 ** 2;
/** The default total cap: 10 GiB. */
export const DEFAULT_RUN_LOG_MAX_BYTES_TOTAL = 10 * 1024 ** 3;

/** Run ids become file names, so they are restricted to a safe alphabet. */
const SAFE_ID = /^[A-Za-z0-9_-]{1,128}$/;

/** Bytes read at a time going forwards (one buffer per reader, whatever the file's size). */
const CHUNK = 1024 * 1024;

/** Bytes read at a time going backwards (finding where the last lines start). */
const BACK_CHUNK = 64 * 1024;

/** A "line" longer than this (a corrupt file without newlines) is skipped, not buffered. */
const MAX_LINE_BYTES = 1024 * 1024;

/** How often a follower with nothing to read checks whether the run ended without a final line. */
const ENDED_CHECK_MS = 5_000;

interface Entry {
  bytes: number;
  open: boolean;
}

/**
 * The task-run logs as files under the home, with the in-process notifications that let
 * readers follow them. Format: JSON lines `{"time","stream","line"}` (plus `"quoll":true` on
 * lines quoll writes and `"final":true` on the closing status line); every run's file ends
 * with that final line. Lines are written as they are captured and readers are woken right
 * after each write. Each log is capped; all logs together are kept under a total by
 * replacing the oldest finished ones (see {@link FileRunLogStoreOptions}). Reads and follows
 * go through the file in fixed-size chunks, so their memory does not grow with its size.
 *
 * @example
 * const logs = new FileRunLogStore({ dir: `${home}/task-logs` });
 * await logs.open();
 * for await (const l of logs.follow(runId, signal)) console.log(l.time, l.stream, l.line);
 */
export class FileRunLogStore implements RunLogStore {
  readonly dir: string;
  readonly maxBytesPerRun: number;
  readonly maxBytesTotal: number;
  private readonly events = new EventEmitter();
  private readonly onError: (err: unknown, context: string) => void;
  /** Every log's size, oldest first (insertion order), for the total cap. */
  private readonly entries = new Map<string, Entry>();
  /** The writer of each run this process opened and has not finished. */
  private readonly writers = new Map<string, FileRunLogWriter>();
  private total = 0;
  private retention: Promise<void> = Promise.resolve();

  constructor(options: FileRunLogStoreOptions | string, onError?: (err: unknown, context: string) => void) {
    const o = typeof options === 'string' ? { dir: options, ...(onError ? { onError } : {}) } : options;
    this.dir = o.dir;
    this.maxBytesPerRun = Math.max(CLOSING_ROOM * 2, o.maxBytesPerRun ?? DEFAULT_RUN_LOG_MAX_BYTES);
    this.maxBytesTotal = o.maxBytesTotal ?? DEFAULT_RUN_LOG_MAX_BYTES_TOTAL;
    this.onError = o.onError ?? defaultOnError;
    mkdirSync(this.dir, { recursive: true });
    // Any number of followers may wait on the same run.
    this.events.setMaxListeners(0);
  }

  /** Bytes of all logs together, as far as this store knows (after {@link FileRunLogStore.open}). */
  get totalBytes(): number {
    return this.total;
  }

  /**
   * Learns the sizes of the logs already on disk (oldest first), then applies the total cap.
   * Call once at start; without it only logs written by this process count.
   */
  async open(): Promise<void> {
    const found: { runId: string; bytes: number; mtime: number }[] = [];
    for (const name of await readdir(this.dir)) {
      if (!name.endsWith('.log')) continue;
      const runId = name.slice(0, -4);
      if (!SAFE_ID.test(runId) || this.entries.has(runId)) continue;
      try {
        const st = await stat(join(this.dir, name));
        found.push({ runId, bytes: st.size, mtime: st.mtimeMs });
      } catch {
        // Removed meanwhile.
      }
    }
    found.sort((a, b) => a.mtime - b.mtime);
    const known = new Map(this.entries);
    this.entries.clear();
    for (const f of found) {
      this.entries.set(f.runId, { bytes: f.bytes, open: false });
      this.total += f.bytes;
    }
    // Logs opened before open() stay newest.
    for (const [runId, entry] of known) this.entries.set(runId, entry);
    this.scheduleRetention();
    await this.retention;
  }

  /** The log file of a run. Throws on an id that is not safe as a file name. */
  pathFor(runId: string): string {
    if (!SAFE_ID.test(runId)) throw new Error(`Invalid run id for a log file: ${JSON.stringify(runId)}`);
    return join(this.dir, `${runId}.log`);
  }

  openWriter(runId: string, existingBytes = 0): RunLogWriter {
    const path = this.pathFor(runId);
    const entry = this.entries.get(runId) ?? { bytes: existingBytes, open: true };
    entry.open = true;
    this.entries.delete(runId);
    this.entries.set(runId, entry);
    const writer: FileRunLogWriter = new FileRunLogWriter(path, this.maxBytesPerRun, entry.bytes, {
      notify: () => this.events.emit(runId),
      onError: this.onError,
      grew: (bytes) => {
        entry.bytes += bytes;
        this.total += bytes;
      },
      closed: () => {
        if (this.writers.get(runId) === writer) this.writers.delete(runId);
        entry.open = false;
        this.scheduleRetention();
      },
    });
    this.writers.set(runId, writer);
    return writer;
  }

  async appendFinal(runId: string, time: string, line: string): Promise<void> {
    const path = this.pathFor(runId);
    // A writer of this run that is gone without its final line is retired first: its file is
    // closed (not left to the garbage collector, DEP0137) and it writes nothing after this line.
    const gone = this.writers.get(runId);
    if (gone !== undefined) {
      this.writers.delete(runId);
      await gone.retire();
    }
    await terminateTornLine(path);
    let size = 0;
    try {
      size = (await stat(path)).size;
    } catch {
      // No log yet.
    }
    const writer = this.openWriter(runId, this.entries.get(runId)?.bytes ?? size);
    await writer.finish(time, line);
  }

  async *lines(runId: string, options: { limit?: number } = {}): AsyncGenerator<TaskRunLogLineDto> {
    const limit = options.limit;
    if (limit !== undefined && limit <= 0) return;
    const fh = await openIfExists(this.pathFor(runId));
    if (fh === null) return;
    try {
      const { size } = await fh.stat();
      const start = limit === undefined ? 0 : await startOfLastLines(fh, size, limit);
      const reader = new ChunkedLines();
      for (let pos = start; pos < size;) {
        const buf = Buffer.allocUnsafe(Math.min(CHUNK, size - pos));
        const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
        if (bytesRead === 0) break;
        pos += bytesRead;
        for (const line of reader.push(buf.subarray(0, bytesRead))) yield toDto(line);
      }
    } finally {
      await fh.close();
    }
  }

  async read(runId: string, options: { limit?: number } = {}): Promise<TaskRunLogLineDto[]> {
    const all: TaskRunLogLineDto[] = [];
    for await (const line of this.lines(runId, options)) all.push(line);
    return all;
  }

  async *follow(
    runId: string,
    signal?: AbortSignal,
    onFinal?: () => void,
    ended?: RunEnded,
  ): AsyncGenerator<TaskRunLogLineDto, void, undefined> {
    const path = this.pathFor(runId);
    const reader = new ChunkedLines();
    let fh: FileHandle | null = null;
    let offset = 0;
    let change: { promise: Promise<boolean>; cancel: () => void } | null = null;
    try {
      for (;;) {
        if (signal?.aborted === true) return;
        // Listen before reading so a write between the read and the wait is not missed.
        change = this.nextChange(runId, signal, ended === undefined ? null : ENDED_CHECK_MS);
        fh ??= await openIfExists(path);
        const size = fh === null ? 0 : (await fh.stat()).size;
        if (fh === null || size <= offset) {
          const woken = await change.promise;
          if (!woken && ended !== undefined) {
            // Quiet for a while: a log that will never get its final line ends here.
            const over = await ended();
            const again = fh === null ? 0 : (await fh.stat()).size;
            if (over !== null && again <= offset) {
              const line: StoredLine = {
                time: new Date().toISOString(),
                stream: 'stdout',
                line: `quoll: run finished: ${over.status} (${over.reason}; its log has no final line)`,
                quoll: true,
                final: true,
              };
              onFinal?.();
              yield toDto(line);
              return;
            }
          }
          continue;
        }
        change.cancel();
        const buf = Buffer.allocUnsafe(Math.min(CHUNK, size - offset));
        const { bytesRead } = await fh.read(buf, 0, buf.length, offset);
        offset += bytesRead;
        for (const line of reader.push(buf.subarray(0, bytesRead))) {
          if (line.final === true) onFinal?.();
          yield toDto(line);
          if (line.final === true) return;
        }
      }
    } finally {
      // The consumer may stop early (break/return) while a listener is registered.
      change?.cancel();
      if (fh !== null) await fh.close();
    }
  }

  /**
   * A promise for the next write to a run's log or abort (true), or for `timeoutMs` passing
   * without one (false), with a way to stop listening.
   */
  private nextChange(
    runId: string,
    signal: AbortSignal | undefined,
    timeoutMs: number | null,
  ): { promise: Promise<boolean>; cancel: () => void } {
    let cancel = (): void => {};
    const promise = new Promise<boolean>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const settle = (woken: boolean): void => {
        clearTimeout(timer);
        this.events.off(runId, wake);
        signal?.removeEventListener('abort', wake);
        resolve(woken);
      };
      const wake = (): void => settle(true);
      this.events.on(runId, wake);
      signal?.addEventListener('abort', wake, { once: true });
      if (timeoutMs !== null) timer = setTimeout(() => settle(false), timeoutMs);
      cancel = wake;
    });
    return { promise, cancel };
  }

  /** Resolves once the total cap scheduled so far (at open and after each finished log) has been applied. */
  retentionApplied(): Promise<void> {
    return this.retention;
  }

  /** Runs the total cap after the current one (they never overlap). */
  private scheduleRetention(): void {
    this.retention = this.retention
      .then(() => this.enforceTotal())
      .catch((err: unknown) => this.onError(err, 'applying the run-log total cap'));
  }

  /** Replaces the oldest finished logs by a note and their final line until under the total cap. */
  private async enforceTotal(): Promise<void> {
    for (const [runId, entry] of this.entries) {
      if (this.total <= this.maxBytesTotal) return;
      if (entry.open || entry.bytes === 0) continue;
      const path = this.pathFor(runId);
      const last = (await this.read(runId, { limit: 1 }))[0];
      const note: StoredLine = {
        time: last?.time ?? new Date().toISOString(),
        stream: 'stdout',
        line: `quoll: this run's output (${formatBytes(entry.bytes)}) was removed to keep all run logs under ${formatBytes(this.maxBytesTotal)}, oldest first`,
        quoll: true,
      };
      const final: StoredLine | null = last === undefined ? null : { ...last, quoll: true, final: true };
      const text = [note, ...(final === null ? [] : [final])].map((l) => `${JSON.stringify(l)}\n`).join('');
      const tmp = `${path}.${randomUUID()}.tmp`;
      const fh = await open(tmp, 'w');
      try {
        await fh.write(text);
        await fh.sync();
      } finally {
        await fh.close();
      }
      // Readers holding the old file keep reading it whole; new ones get the note.
      await rename(tmp, path);
      const bytes = Buffer.byteLength(text);
      this.total += bytes - entry.bytes;
      entry.bytes = bytes;
    }
  }
}

/** Callbacks from a writer to its store. */
interface WriterHooks {
  notify: () => void;
  onError: (err: unknown, context: string) => void;
  grew: (bytes: number) => void;
  closed: () => void;
}

/**
 * Appends one run's lines to its log file: each batch is one append, followers are woken after
 * each, and the final line is made durable (fsync) before the writer closes.
 */
class FileRunLogWriter extends QueuedRunLogWriter {
  private fh: Promise<FileHandle> | null = null;
  /** Set by {@link FileRunLogWriter.retire}: the file is closed and nothing more is written. */
  private retired = false;

  constructor(
    private readonly path: string,
    maxBytes: number,
    written: number,
    private readonly hooks: WriterHooks,
  ) {
    super(maxBytes, written);
  }

  protected async writeBatch(batch: QueuedRunLogLine[]): Promise<void> {
    if (this.retired) return;
    let text = '';
    for (const queued of batch) text += queued.text;
    try {
      this.fh ??= open(this.path, 'a');
      await (await this.fh).write(text);
      this.hooks.grew(Buffer.byteLength(text));
    } catch (err) {
      this.hooks.onError(err, `writing ${this.path}`);
    }
    this.hooks.notify();
  }

  /**
   * Closes the file of a writer that will never finish (its run's final line is written by
   * another), after the batch in flight; lines queued later are dropped.
   */
  async retire(): Promise<void> {
    this.retired = true;
    await this.drain();
    const fh = await this.fh?.catch(() => null);
    await fh?.close().catch(() => {});
  }

  protected async close(): Promise<void> {
    if (this.retired) return;
    if (this.fh !== null) {
      const fh = await this.fh.catch(() => null);
      if (fh !== null) {
        // The final line is the promise that the log is complete: make it durable.
        await fh.sync().catch((err: unknown) => this.hooks.onError(err, `fsync of ${this.path}`));
        await fh.close().catch(() => {});
      }
    }
    this.hooks.closed();
  }
}

/**
 * Splits a byte stream of JSON lines into parsed lines, holding at most one line (and at
 * most {@link MAX_LINE_BYTES}: a longer run without newline is skipped up to the next one).
 */
class ChunkedLines {
  private carry: Buffer[] = [];
  private carryBytes = 0;
  private skipping = false;

  *push(chunk: Buffer): Generator<StoredLine> {
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, start);
      if (nl < 0) break;
      const piece = chunk.subarray(start, nl);
      start = nl + 1;
      if (this.skipping) {
        this.skipping = false;
        this.carry = [];
        this.carryBytes = 0;
        continue;
      }
      const whole = this.carryBytes === 0 ? piece : Buffer.concat([...this.carry, piece]);
      this.carry = [];
      this.carryBytes = 0;
      const line = parseLine(whole.toString('utf8'));
      if (line !== null) yield line;
    }
    if (start < chunk.length && !this.skipping) {
      const rest = chunk.subarray(start);
      this.carryBytes += rest.length;
      if (this.carryBytes > MAX_LINE_BYTES) {
        this.skipping = true;
        this.carry = [];
        this.carryBytes = 0;
      } else {
        // Copied: the caller may reuse its buffer.
        this.carry.push(Buffer.from(rest));
      }
    }
  }
}

/**
 * The offset where the last `limit` lines of a file begin, found by reading backwards in
 * chunks and counting newlines (nothing is kept).
 */
async function startOfLastLines(fh: FileHandle, size: number, limit: number): Promise<number> {
  const buf = Buffer.allocUnsafe(BACK_CHUNK);
  let pos = size;
  let newlines = 0;
  // A trailing newline ends the last line; it does not start another.
  let skipTrailing = true;
  while (pos > 0) {
    const len = Math.min(BACK_CHUNK, pos);
    pos -= len;
    await fh.read(buf, 0, len, pos);
    for (let i = len - 1; i >= 0; i--) {
      if (buf[i] !== 0x0a) {
        skipTrailing = false;
        continue;
      }
      if (skipTrailing) {
        skipTrailing = false;
        continue;
      }
      newlines++;
      if (newlines === limit) return pos + i + 1;
    }
  }
  return 0;
}

function parseLine(text: string): StoredLine | null {
  if (text === '') return null;
  try {
    const v = JSON.parse(text) as Partial<StoredLine>;
    if (typeof v.time !== 'string' || typeof v.line !== 'string') return null;
    if (v.stream !== 'stdout' && v.stream !== 'stderr') return null;
    return v as StoredLine;
  } catch {
    // A torn last line (crash mid-write) is skipped rather than failing the whole read.
    return null;
  }
}

function toDto(l: StoredLine): TaskRunLogLineDto {
  return { time: l.time, stream: l.stream, line: l.line };
}

/**
 * Ends a log whose last line was torn by a crash mid-write with a newline, so the next line
 * appended starts on its own line instead of being glued to (and lost with) the torn one.
 */
async function terminateTornLine(path: string): Promise<void> {
  let fh: FileHandle;
  try {
    fh = await open(path, 'r+');
  } catch (err) {
    if (isNotFound(err)) return;
    throw err;
  }
  try {
    const { size } = await fh.stat();
    if (size === 0) return;
    const last = Buffer.alloc(1);
    await fh.read(last, 0, 1, size - 1);
    if (last[0] !== 0x0a) await fh.write('\n', size);
  } finally {
    await fh.close();
  }
}

async function openIfExists(path: string): Promise<FileHandle | null> {
  try {
    return await open(path, 'r');
  } catch (err) {
    if (isNotFound(err)) return null;
    throw err;
  }
}

function isNotFound(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === 'ENOENT';
}

function defaultOnError(err: unknown, context: string): void {
  console.error(`quoll: run log error (${context}):`, err);
}
