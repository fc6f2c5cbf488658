import type { TaskRunLogLineDto } from '@quoll/client/wire';

/** Appends one run's captured lines; the last one written is its final status line. */
export interface RunLogWriter {
  /**
   * Queues a captured line. Returns false when enough is queued that the producer should
   * pause until {@link RunLogWriter.onDrain} (the run's output pipes are then paused).
   */
  write(time: string, stream: 'stdout' | 'stderr', line: string): boolean;
  /** Calls `listener` once everything queued so far is written. */
  onDrain(listener: () => void): void;
  /** Resolves when every queued line has been written. */
  drain(): Promise<void>;
  /** Writes the final status line (after any note on dropped output), makes it durable, closes. */
  finish(time: string, line: string): Promise<void>;
}

/** Tells a follower how a run without a final line in its log ended (null: still going). */
export type RunEnded = () => Promise<{ status: string; reason: string } | null>;

/**
 * Where task-run logs live: the port the runner writes through and the API reads through
 * (files under the home now; a database in a cluster later). Every run's log ends with a
 * final status line; reads and follows stream, in constant memory, whatever a log's size.
 */
export interface RunLogStore {
  /** Opens the appending writer of a run. */
  openWriter(runId: string): RunLogWriter;
  /** Appends a final status line to a run's log (creating it if needed), e.g. for a lost run. */
  appendFinal(runId: string, time: string, line: string): Promise<void>;
  /** A run's lines, oldest first: all, or the last `limit`; streamed. A run without a log has none. */
  lines(runId: string, options?: { limit?: number }): AsyncIterable<TaskRunLogLineDto>;
  /** {@link RunLogStore.lines}, collected (for small reads). */
  read(runId: string, options?: { limit?: number }): Promise<TaskRunLogLineDto[]>;
  /**
   * A run's existing then live lines, ending after the final status line (calling `onFinal`
   * first) or on abort. When the log has no final line but `ended` says the run is over (a
   * log cut by a crash or removed), a final line saying so ends it.
   */
  follow(
    runId: string,
    signal?: AbortSignal,
    onFinal?: () => void,
    ended?: RunEnded,
  ): AsyncIterable<TaskRunLogLineDto>;
}
