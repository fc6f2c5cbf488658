import type { TaskRunLogLineDto } from '@quoll/client/wire';
import { formatBytes } from './format-bytes.js';
import type { RunLogWriter } from './run-log-store.js';

/** Queued bytes past which `write` asks the producer to pause (its pipes are paused). */
const HIGH_WATER_BYTES = 1024 * 1024;
/** Room kept under a run's cap for the notes on dropped output and the final status line. */
export const CLOSING_ROOM = 4096;

/**
 * One line as a run log keeps it: `quoll` marks lines written by Quoll itself rather than by
 * the run's code, `final` the closing status line (so user output that looks like it cannot
 * end a follow). Absent means false, which keeps stored user lines small.
 */
export interface StoredRunLogLine extends TaskRunLogLineDto {
  quoll?: true;
  final?: true;
}

/** A queued line with its stored text (one JSON line), whose bytes count against the cap. */
export interface QueuedRunLogLine {
  entry: StoredRunLogLine;
  text: string;
}

/**
 * The part of a run's log writer that does not depend on where lines go: `write` only queues;
 * queued lines are handed to {@link QueuedRunLogWriter.writeBatch} together, one batch at a
 * time; past the cap lines are counted instead of queued, and `finish` notes what was dropped
 * before the final line. Every backend counts a line's bytes the same way (its JSON text), so
 * a cap means the same on each.
 */
export abstract class QueuedRunLogWriter implements RunLogWriter {
  private pending: QueuedRunLogLine[] = [];
  private pendingBytes = 0;
  private writing: Promise<void> | null = null;
  private closed = false;
  private capped = false;
  private droppedLines = 0;
  private droppedBytes = 0;
  private drainListeners: (() => void)[] = [];

  protected constructor(
    protected readonly maxBytes: number,
    private written: number,
  ) {}

  /** Stores one batch of lines, oldest first. Errors are the subclass's to report. */
  protected abstract writeBatch(batch: QueuedRunLogLine[]): Promise<void>;
  /** Called after the final line is written: make the log durable and release resources. */
  protected abstract close(): Promise<void>;

  write(time: string, stream: 'stdout' | 'stderr', line: string): boolean {
    if (this.closed) return true;
    const entry: StoredRunLogLine = { time, stream, line };
    const text = `${JSON.stringify(entry)}\n`;
    const bytes = Buffer.byteLength(text);
    if (this.capped || this.written + bytes > this.maxBytes - CLOSING_ROOM) {
      if (!this.capped) {
        this.capped = true;
        this.enqueue({
          time,
          stream: 'stdout',
          line: `quoll: this run's log reached its cap of ${formatBytes(this.maxBytes)}; further output is dropped and counted`,
          quoll: true,
        });
      }
      this.droppedLines++;
      this.droppedBytes += bytes;
      return true;
    }
    this.enqueueText(entry, text, bytes);
    return this.pendingBytes < HIGH_WATER_BYTES;
  }

  onDrain(listener: () => void): void {
    if (this.pendingBytes === 0 && this.writing === null) listener();
    else this.drainListeners.push(listener);
  }

  async finish(time: string, line: string): Promise<void> {
    if (this.droppedLines > 0) {
      this.enqueue({
        time,
        stream: 'stdout',
        line: `quoll: ${this.droppedLines} lines (${formatBytes(this.droppedBytes)}) of output were dropped after the log cap of ${formatBytes(this.maxBytes)}`,
        quoll: true,
      });
    }
    this.enqueue({ time, stream: 'stdout', line, quoll: true, final: true });
    this.closed = true;
    await this.drain();
    await this.close();
  }

  async drain(): Promise<void> {
    while (this.writing !== null) await this.writing;
  }

  private enqueue(entry: StoredRunLogLine): void {
    const text = `${JSON.stringify(entry)}\n`;
    this.enqueueText(entry, text, Buffer.byteLength(text));
  }

  private enqueueText(entry: StoredRunLogLine, text: string, bytes: number): void {
    this.written += bytes;
    this.pending.push({ entry, text });
    this.pendingBytes += bytes;
    this.kick();
  }

  private kick(): void {
    if (this.writing !== null) return;
    this.writing = this.flushLoop().finally(() => {
      this.writing = null;
      if (this.pending.length > 0) this.kick();
      else this.drained();
    });
  }

  private drained(): void {
    const listeners = this.drainListeners;
    this.drainListeners = [];
    for (const listener of listeners) listener();
  }

  private async flushLoop(): Promise<void> {
    while (this.pending.length > 0) {
      const batch = this.pending;
      this.pending = [];
      this.pendingBytes = 0;
      await this.writeBatch(batch);
    }
  }
}
