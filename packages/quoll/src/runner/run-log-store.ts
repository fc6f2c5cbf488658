import { EventEmitter } from 'node:events';
import { mkdirSync } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import type { TaskRunLogLineDto } from '@quoll/client/wire';

/**
 * One line of a run's log file (`<logsDir>/<runId>.log`, one JSON object per line).
 * `quoll` marks lines written by quoll itself rather than by the run's code, `final` the
 * closing status line (so user output that looks like it cannot end a follow).
 */
interface StoredLine extends TaskRunLogLineDto {
  quoll?: true;
  final?: true;
}

/** Run ids become file names, so they are restricted to a safe alphabet. */
const SAFE_ID = /^[A-Za-z0-9_-]{1,128}$/;

/** Chunk size when reading a log backwards for a tail. */
const TAIL_CHUNK = 64 * 1024;

/**
 * The durable per-run log files and the in-process notifications that let readers follow
 * them. Format: JSON lines `{"time","stream","line"}` (plus `"quoll":true` on lines quoll
 * writes and `"final":true` on the closing status line); every run's file ends with that
 * final line. Lines are written as they are captured and readers are woken right after
 * each write.
 *
 * @example
 * const logs = new RunLogStore(`${home}/task-logs`);
 * for await (const l of logs.follow(runId, signal)) console.log(l.time, l.stream, l.line);
 */
export class RunLogStore {
  private readonly events = new EventEmitter();

  /**
   * @param dir directory holding `<runId>.log` files; created if missing.
   * @param onError where write failures are reported. @default console.error
   */
  constructor(
    readonly dir: string,
    private readonly onError: (err: unknown, context: string) => void = defaultOnError,
  ) {
    mkdirSync(dir, { recursive: true });
    // Any number of followers may wait on the same run.
    this.events.setMaxListeners(0);
  }

  /** The log file of a run. Throws on an id that is not safe as a file name. */
  pathFor(runId: string): string {
    if (!SAFE_ID.test(runId)) throw new Error(`Invalid run id for a log file: ${JSON.stringify(runId)}`);
    return join(this.dir, `${runId}.log`);
  }

  /** Opens the appending writer of a run. */
  openWriter(runId: string): RunLogWriter {
    return new RunLogWriter(this.pathFor(runId), () => this.events.emit(runId), this.onError);
  }

  /** Appends a final status line to a run's log (creating it if needed), e.g. for a lost run. */
  async appendFinal(runId: string, time: string, line: string): Promise<void> {
    await terminateTornLine(this.pathFor(runId));
    const writer = this.openWriter(runId);
    await writer.finish(time, line);
  }

  /**
   * The last `limit` lines of a run's log (all lines when `limit` is undefined), oldest
   * first. A run with no log yet has no lines.
   */
  async read(runId: string, options: { limit?: number } = {}): Promise<TaskRunLogLineDto[]> {
    const path = this.pathFor(runId);
    const limit = options.limit;
    if (limit !== undefined && limit <= 0) return [];
    let fh: FileHandle;
    try {
      fh = await open(path, 'r');
    } catch (err) {
      if (isNotFound(err)) return [];
      throw err;
    }
    try {
      const { size } = await fh.stat();
      // Read backwards until there are more newlines than lines wanted (or the file starts).
      const chunks: Buffer[] = [];
      let pos = size;
      let newlines = 0;
      while (pos > 0 && (limit === undefined || newlines <= limit)) {
        const len = Math.min(TAIL_CHUNK, pos);
        pos -= len;
        const buf = Buffer.alloc(len);
        await fh.read(buf, 0, len, pos);
        chunks.unshift(buf);
        for (const b of buf) if (b === 0x0a) newlines++;
      }
      const lines = Buffer.concat(chunks).toString('utf8').split('\n');
      // When the read started mid-file the first piece is a partial line; the last is '' or torn.
      if (pos > 0) lines.shift();
      lines.pop();
      const parsed = lines.map(parseLine).filter((l): l is StoredLine => l !== null);
      const tail = limit === undefined ? parsed : parsed.slice(-limit);
      return tail.map(toDto);
    } finally {
      await fh.close();
    }
  }

  /**
   * Yields a run's existing lines, then new lines as they are written, and ends after the
   * final status line (calling `onFinal` first, so a caller can tell a complete log from an
   * abort) or when `signal` aborts. Waiting is event-driven: the writers in this process
   * wake followers after each write.
   */
  async *follow(
    runId: string,
    signal?: AbortSignal,
    onFinal?: () => void,
  ): AsyncGenerator<TaskRunLogLineDto, void, undefined> {
    const path = this.pathFor(runId);
    const decoder = new StringDecoder('utf8');
    let fh: FileHandle | null = null;
    let offset = 0;
    let rest = '';
    let change: { promise: Promise<void>; cancel: () => void } | null = null;
    try {
      for (;;) {
        if (signal?.aborted === true) return;
        // Listen before reading so a write between the read and the wait is not missed.
        change = this.nextChange(runId, signal);
        if (fh === null) fh = await openIfExists(path);
        const size = fh === null ? 0 : (await fh.stat()).size;
        if (fh === null || size <= offset) {
          await change.promise;
          continue;
        }
        change.cancel();
        const buf = Buffer.alloc(size - offset);
        const { bytesRead } = await fh.read(buf, 0, buf.length, offset);
        offset += bytesRead;
        const parts = (rest + decoder.write(buf.subarray(0, bytesRead))).split('\n');
        rest = parts.pop() ?? '';
        for (const part of parts) {
          const line = parseLine(part);
          if (line === null) continue;
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

  /** A promise for the next write to a run's log (or abort), with a way to stop listening. */
  private nextChange(runId: string, signal?: AbortSignal): { promise: Promise<void>; cancel: () => void } {
    let cancel = (): void => {};
    const promise = new Promise<void>((resolve) => {
      const done = (): void => {
        this.events.off(runId, done);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      this.events.on(runId, done);
      signal?.addEventListener('abort', done, { once: true });
      cancel = done;
    });
    return { promise, cancel };
  }
}

/**
 * Appends one run's lines to its log file. `write` only queues; queued lines are written
 * together by one background write at a time, and followers are woken after each write.
 */
export class RunLogWriter {
  private pending: string[] = [];
  private writing: Promise<void> | null = null;
  private fh: Promise<FileHandle> | null = null;
  private closed = false;

  /** Use {@link RunLogStore.openWriter}. */
  constructor(
    private readonly path: string,
    private readonly notify: () => void,
    private readonly onError: (err: unknown, context: string) => void,
  ) {}

  /** Queues a captured line. */
  write(time: string, stream: 'stdout' | 'stderr', line: string): void {
    this.enqueue({ time, stream, line });
  }

  /** Writes the final status line, waits for everything to reach the disk and closes the file. */
  async finish(time: string, line: string): Promise<void> {
    this.enqueue({ time, stream: 'stdout', line, quoll: true, final: true });
    this.closed = true;
    await this.drain();
    if (this.fh !== null) {
      const fh = await this.fh.catch(() => null);
      if (fh !== null) {
        // The final line is the promise that the log is complete: make it durable.
        await fh.sync().catch((err: unknown) => this.onError(err, `fsync of ${this.path}`));
        await fh.close().catch(() => {});
      }
    }
  }

  /** Resolves when every queued line has been written. */
  async drain(): Promise<void> {
    while (this.writing !== null) await this.writing;
  }

  private enqueue(entry: StoredLine): void {
    if (this.closed && entry.final !== true) return;
    this.pending.push(`${JSON.stringify(entry)}\n`);
    this.kick();
  }

  private kick(): void {
    if (this.writing !== null) return;
    this.writing = this.flushLoop().finally(() => {
      this.writing = null;
      if (this.pending.length > 0) this.kick();
    });
  }

  private async flushLoop(): Promise<void> {
    while (this.pending.length > 0) {
      const text = this.pending.join('');
      this.pending = [];
      try {
        this.fh ??= open(this.path, 'a');
        await (await this.fh).write(text);
      } catch (err) {
        this.onError(err, `writing ${this.path}`);
      }
      this.notify();
    }
  }
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
    await stat(path);
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
