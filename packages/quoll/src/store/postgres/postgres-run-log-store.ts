import type { TaskRunLogLineDto } from '@quoll/client/wire';
import type { RunEnded, RunLogStore, RunLogWriter } from '../../runner/index.js';
import type { QueuedRunLogLine, StoredRunLogLine } from '../../runner/index.js';
import { CLOSING_ROOM, DEFAULT_RUN_LOG_MAX_BYTES, QueuedRunLogWriter } from '../../runner/index.js';
import { StorageUnavailableError } from '../../errors/index.js';
import type { PostgresDatabase } from './postgres-database.js';
import { PG_UNIQUE_VIOLATION, sqlState } from './postgres-database.js';

/** The channel every write announces itself on; the payload is the run id. */
export const RUN_LOG_CHANNEL = 'quoll_run_log';

/** A follower re-reads at least this often without a notification, by default. */
const FOLLOW_POLL_MS = 1_000;
/** How often a quiet follower asks whether the run ended without a final line. */
const ENDED_CHECK_MS = 5_000;
/** Lines fetched per round-trip by a read or a follow (memory stays bounded). */
const PAGE_LINES = 1_000;
/** A follower's first wait after a read the database could not answer; it doubles up to {@link RETRY_MAX_MS}. */
const RETRY_FIRST_MS = 100;
const RETRY_MAX_MS = 5_000;
/** How long a follower keeps retrying reads the database cannot answer, by default. */
const FOLLOW_OUTAGE_MS = 5 * 60_000;
/** How long a follower's read may go unanswered before its connection is taken as dead, by default. */
const FOLLOW_READ_TIMEOUT_MS = 30_000;

interface LineRow {
  seq: number;
  time: string;
  stream: 'stdout' | 'stderr';
  line: string;
  final: boolean;
}

interface Pending {
  time: string;
  stream: 'stdout' | 'stderr';
  line: string;
  quoll: boolean;
  final: boolean;
}

/** Options of {@link PostgresRunLogStore}. */
export interface PostgresRunLogStoreOptions {
  /** Most bytes one run's log may take (counted as the file store counts). @default 64 MiB */
  maxBytesPerRun?: number;
  /** Where write failures are reported. @default console.error */
  onError?: (err: unknown, context: string) => void;
  /**
   * How often a follower re-reads without a notification (one lost in a reconnect is also made
   * up for at once, when the connection listens again). @default 1000
   */
  followPollMs?: number;
  /**
   * How long a follower keeps retrying reads that fail because the database cannot be reached
   * (with backoff from 100 ms to 5 s) before its follow fails with that error. @default 300000
   */
  followOutageMs?: number;
  /**
   * How long a follower's read may go unanswered before its connection is dropped as dead (a
   * half-open one) and the read retried on a new one. @default 30000
   */
  followReadTimeoutMs?: number;
}

/**
 * {@link RunLogStore} in PostgreSQL (table `task_run_log_lines`, migration 0007): any node reads
 * any run's log and follows it live. Every write is one statement that inserts the lines and
 * sends `NOTIFY quoll_run_log` with the run id; each node keeps one `LISTEN` connection that
 * wakes its followers (who also re-read every second, and at once when that connection was
 * re-opened, in case a notification was lost meanwhile). The per-run cap and its notes are the file store's.
 */
export class PostgresRunLogStore implements RunLogStore {
  readonly #db: PostgresDatabase;
  readonly #maxBytesPerRun: number;
  readonly #onError: (err: unknown, context: string) => void;
  readonly #followPollMs: number;
  readonly #followOutageMs: number;
  readonly #followReadTimeoutMs: number;
  /** Followers' wake-ups by run id, behind one subscription kept from the first follow on. */
  readonly #followers = new Map<string, Set<() => void>>();
  #subscribed: Promise<unknown> | null = null;

  constructor(db: PostgresDatabase, options: PostgresRunLogStoreOptions = {}) {
    this.#db = db;
    this.#maxBytesPerRun = Math.max(CLOSING_ROOM * 2, options.maxBytesPerRun ?? DEFAULT_RUN_LOG_MAX_BYTES);
    this.#followPollMs = Math.max(1, options.followPollMs ?? FOLLOW_POLL_MS);
    this.#followOutageMs = Math.max(0, options.followOutageMs ?? FOLLOW_OUTAGE_MS);
    this.#followReadTimeoutMs = Math.max(1, options.followReadTimeoutMs ?? FOLLOW_READ_TIMEOUT_MS);
    this.#onError =
      options.onError ?? ((err, context) => console.error(`quoll: run log error (${context}):`, err));
  }

  openWriter(runId: string): RunLogWriter {
    return new PostgresRunLogWriter(this.#db, runId, this.#maxBytesPerRun, 0, this.#onError);
  }

  async appendFinal(runId: string, time: string, line: string): Promise<void> {
    // The run's own writer (on a node that died) may have numbered lines: insert after them.
    for (let attempt = 1; ; attempt++) {
      try {
        await insertLines(this.#db, runId, null, [
          { time, stream: 'stdout', line, quoll: true, final: true },
        ]);
        return;
      } catch (err) {
        if (sqlState(err) !== PG_UNIQUE_VIOLATION || attempt >= 10) throw err;
      }
    }
  }

  async *lines(runId: string, options: { limit?: number } = {}): AsyncGenerator<TaskRunLogLineDto> {
    const limit = options.limit;
    if (limit !== undefined && limit <= 0) return;
    let after = 0;
    if (limit !== undefined) {
      // Start just before the last `limit` lines.
      const start = await this.#db.one<{ seq: number }>(
        'SELECT seq FROM task_run_log_lines WHERE run_id = $1 ORDER BY seq DESC OFFSET $2 LIMIT 1',
        [runId, limit],
      );
      after = start?.seq ?? 0;
    }
    for (;;) {
      const rows = await this.#page(runId, after);
      for (const row of rows) yield toDto(row);
      if (rows.length < PAGE_LINES) return;
      after = rows[rows.length - 1]?.seq ?? after;
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
    let after = 0;
    let wake: (() => void) | null = null;
    // Subscribed before the first read, so a write between a read and the wait is not missed.
    // The channel is listened to once, by the first follow, and stays so: later follows start
    // without a LISTEN round trip (nor an UNLISTEN when they end).
    this.#subscribed ??= this.#db
      .listen(
        RUN_LOG_CHANNEL,
        (payload) => {
          for (const w of this.#followers.get(payload) ?? []) w();
        },
        {
          // Lines written while the connection was down were announced to nobody: every
          // follower re-reads now rather than at its next poll.
          onCatchUp: () => {
            for (const wakers of this.#followers.values()) for (const w of wakers) w();
          },
        },
      )
      .catch((err: unknown) => {
        this.#subscribed = null;
        throw err;
      });
    await this.#subscribed;
    const waker = (): void => wake?.();
    const wakers = this.#followers.get(runId) ?? new Set<() => void>();
    this.#followers.set(runId, wakers);
    wakers.add(waker);
    const unsubscribe = (): void => {
      wakers.delete(waker);
      if (wakers.size === 0 && this.#followers.get(runId) === wakers) this.#followers.delete(runId);
    };
    const onAbort = (): void => wake?.();
    signal?.addEventListener('abort', onAbort);
    let quietSince = Date.now();
    try {
      for (;;) {
        if (signal?.aborted === true) return;
        let woken = false;
        const notified = new Promise<void>((resolve) => {
          wake = () => {
            woken = true;
            resolve();
          };
        });
        const rows = await this.#followPage(runId, after, signal);
        if (rows === null) return;
        for (const row of rows) {
          after = row.seq;
          if (row.final) onFinal?.();
          yield toDto(row);
          if (row.final) return;
        }
        if (rows.length > 0) {
          quietSince = Date.now();
          continue;
        }
        if (ended !== undefined && Date.now() - quietSince >= ENDED_CHECK_MS) {
          quietSince = Date.now();
          // Quiet for a while: a log that will never get its final line ends here.
          // Asked again at the next check when the database cannot answer now.
          const over = await ended().catch((err: unknown) => {
            if (err instanceof StorageUnavailableError) return null;
            throw err;
          });
          const more = over === null ? [] : await this.#followPage(runId, after, signal);
          if (more === null) return;
          if (over !== null && more.length === 0) {
            onFinal?.();
            yield {
              time: new Date().toISOString(),
              stream: 'stdout',
              line: `quoll: run finished: ${over.status} (${over.reason}; its log has no final line)`,
            };
            return;
          }
        }
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          notified,
          new Promise<void>((resolve) => {
            timer = setTimeout(resolve, this.#followPollMs);
          }),
        ]);
        clearTimeout(timer);
        if (woken) quietSince = Date.now();
      }
    } finally {
      wake = null;
      signal?.removeEventListener('abort', onAbort);
      unsubscribe();
    }
  }

  /**
   * A follower's read. One the database cannot answer (an outage, a connection lost) is retried
   * with backoff until the database is back, for at most `followOutageMs`, and told once per
   * outage; `null` when `signal` aborts meanwhile (the follow ends cleanly).
   */
  async #followPage(
    runId: string,
    after: number,
    signal: AbortSignal | undefined,
  ): Promise<LineRow[] | null> {
    const giveUpAt = Date.now() + this.#followOutageMs;
    let delay = RETRY_FIRST_MS;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#page(runId, after, this.#followReadTimeoutMs);
      } catch (err) {
        if (!(err instanceof StorageUnavailableError) || Date.now() + delay > giveUpAt) throw err;
        if (attempt === 1)
          this.#onError(err, `following the log of run ${runId}; retrying until the database answers`);
      }
      if (!(await pause(delay, signal))) return null;
      delay = Math.min(RETRY_MAX_MS, delay * 2);
    }
  }

  /** The lines after `after`; with `timeoutMs`, a read unanswered that long fails as the database's. */
  #page(runId: string, after: number, timeoutMs?: number): Promise<LineRow[]> {
    const text =
      'SELECT seq, time, stream, line, final FROM task_run_log_lines WHERE run_id = $1 AND seq > $2 ORDER BY seq LIMIT $3';
    const values = [runId, after, PAGE_LINES];
    return timeoutMs === undefined
      ? this.#db.rows<LineRow>(text, values)
      : this.#db.rowsWithin<LineRow>(timeoutMs, text, values);
  }
}

/**
 * One run's writer: each queued batch is one statement, numbered after the run's last line and
 * announced to followers in that statement; each commits on its own, so once drained the final
 * line is durable.
 */
class PostgresRunLogWriter extends QueuedRunLogWriter {
  private next: number | null = null;

  constructor(
    private readonly db: PostgresDatabase,
    private readonly runId: string,
    maxBytes: number,
    written: number,
    private readonly onError: (err: unknown, context: string) => void,
  ) {
    super(maxBytes, written);
  }

  protected async writeBatch(batch: QueuedRunLogLine[]): Promise<void> {
    const lines = batch.map(({ entry }) => toPending(entry));
    for (let attempt = 1; ; attempt++) {
      try {
        this.next = await insertLines(this.db, this.runId, this.next, lines);
        return;
      } catch (err) {
        // Numbers taken by another writer (a final line from recovery): renumber after them.
        if (sqlState(err) === PG_UNIQUE_VIOLATION && attempt < 3) {
          this.next = null;
          continue;
        }
        this.onError(err, `writing the log of run ${this.runId}`);
        return;
      }
    }
  }

  protected close(): Promise<void> {
    return Promise.resolve();
  }
}

function toPending(entry: StoredRunLogLine): Pending {
  return {
    time: entry.time,
    stream: entry.stream,
    line: entry.line,
    quoll: entry.quoll === true,
    final: entry.final === true,
  };
}

/**
 * Inserts lines numbered from `first` (null: after the run's current last line) and notifies
 * followers, in one statement. Returns the number after the last one inserted.
 */
async function insertLines(
  db: PostgresDatabase,
  runId: string,
  first: number | null,
  lines: readonly Pending[],
): Promise<number> {
  const row = await db.one<{ next: number }>(
    `WITH base AS (
       SELECT COALESCE($2::bigint, (SELECT COALESCE(MAX(seq), 0) + 1 FROM task_run_log_lines WHERE run_id = $1)) AS first
     ), ins AS (
       INSERT INTO task_run_log_lines (run_id, seq, time, stream, line, quoll, final)
       SELECT $1, base.first + l.i - 1, l.time, l.stream, l.line, l.quoll, l.final
       FROM base, unnest($3::text[], $4::text[], $5::text[], $6::boolean[], $7::boolean[])
         WITH ORDINALITY AS l(time, stream, line, quoll, final, i)
       RETURNING seq
     )
     SELECT (SELECT MAX(seq) + 1 FROM ins) AS next, pg_notify($8, $1)`,
    [
      runId,
      first,
      lines.map((l) => l.time),
      lines.map((l) => l.stream),
      lines.map((l) => l.line),
      lines.map((l) => l.quoll),
      lines.map((l) => l.final),
      RUN_LOG_CHANNEL,
    ],
  );
  if (row === null) throw new Error(`inserting the log lines of run ${runId} returned nothing`);
  return row.next;
}

/** Waits `ms`; `false` at once if `signal` aborts (before or meanwhile). */
function pause(ms: number, signal: AbortSignal | undefined): Promise<boolean> {
  if (signal?.aborted === true) return Promise.resolve(false);
  return new Promise((resolve) => {
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      resolve(ok);
    };
    const onAbort = (): void => done(false);
    const timer = setTimeout(() => done(true), ms);
    signal?.addEventListener('abort', onAbort);
  });
}

function toDto(row: LineRow): TaskRunLogLineDto {
  return { time: row.time, stream: row.stream, line: row.line };
}
