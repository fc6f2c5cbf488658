// The writer thread of a cluster node's inference log: stores the appends its owner sends in
// PostgreSQL on a connection of its own, so merging, encoding and the database round trips
// stay off the request thread (as the embedded store's writer thread keeps file writes off it).
import { parentPort, workerData } from 'node:worker_threads';
import type { RecordBatch } from 'apache-arrow';
import { LogBatchUnpacker, PoisonLogBatchError } from '../../logs/index.js';
import { PG_QUERY_CANCELED, PostgresDatabase, sqlState } from './postgres-database.js';
import {
  detachEmptiedPartitions,
  PostgresLogBatchWriter,
  timerDelay,
  VACUUM_LOG_BATCHES,
} from './postgres-log-batch-writer.js';
import type {
  FromPostgresLogWriter,
  PostgresLogWriterSettings,
  ToPostgresLogWriter,
} from './postgres-log-writer-protocol.js';

const port = parentPort;
if (port === null) throw new Error('postgres-log-writer-worker.ts runs as a worker thread only');
const settings = workerData as PostgresLogWriterSettings;
// Arenas go back to the owner without a copy (its packer reuses them).
const post = (message: FromPostgresLogWriter): void =>
  port.postMessage(message, message.type === 'ready' ? message.arenas : []);

const db = await PostgresDatabase.open({
  url: settings.url,
  ...(settings.schema === null ? {} : { schema: settings.schema }),
  // One connection for the writes, one for the occasional vacuum that runs beside them.
  poolSize: 2,
  migrate: false,
});
const writer = new PostgresLogBatchWriter(settings.nodeId, settings);
const unpacker = new LogBatchUnpacker();

/** Rows received and not yet committed, per pipeline, in arrival order. */
const backlog = new Map<number, RecordBatch[]>();
/** Highest append seq whose rows are in the backlog, and the highest committed. */
let backlogSeq = 0;
let writtenSeq = settings.confirmedSeq;
/** Arenas of the messages received, with their seq: handed back once everything up to it is committed. */
const arenas: { seq: number; arena: ArrayBuffer }[] = [];
let stopSeq: number | null = null;
let wake: (() => void) | null = null;
const wakeUp = (): void => {
  const fn = wake;
  wake = null;
  fn?.();
};

port.on('message', (msg: ToPostgresLogWriter) => {
  if (msg.type === 'items') {
    // Its seq counts as stored whatever is set aside (log-batch-transfer.ts says why).
    const groups = unpacker.unpackHandOff(msg.body, msg.pipelineIds, (report) =>
      post({ type: 'quarantined', ...report }),
    );
    msg.pipelineIds.forEach((pipelineId, k) => {
      const batches = groups[k] ?? [];
      const list = backlog.get(pipelineId);
      if (list === undefined) backlog.set(pipelineId, batches);
      else for (const b of batches) list.push(b);
    });
    backlogSeq = Math.max(backlogSeq, msg.seq);
    arenas.push({ seq: msg.seq, arena: msg.body.arena });
  } else {
    stopSeq = msg.lastSeq;
    cancelVacuum();
  }
  wakeUp();
});

/** The rows being stored (kept across failed attempts), and the highest append seq among them. */
let writing: { batches: Map<number, RecordBatch[]>; seq: number } | null = null;
/**
 * Pipelines whose rows failed by themselves (a `PoisonLogBatchError`, or PostgreSQL refused
 * them as data): written next one batch at a time, each in a transaction of its own, and a
 * batch that fails so again is set aside (told in `quarantined`) while the rest are stored.
 */
const isolate = new Set<number>();

/** Whether PostgreSQL refused a statement for the values it carried (data exception, or a limit), not for the connection or a lock. */
function isDataError(err: unknown): boolean {
  const state = sqlState(err);
  return state !== null && (state.startsWith('22') || state.startsWith('54'));
}

/** Stores the isolated pipelines' batches one by one, setting aside those that fail by themselves. */
async function writeIsolated(batches: Map<number, RecordBatch[]>): Promise<void> {
  for (const id of [...batches.keys()].sort((a, b) => a - b)) {
    if (!isolate.has(id)) continue;
    const list = batches.get(id) ?? [];
    while (list.length > 0) {
      const batch = list[0]!;
      try {
        writer.committed(await db.transaction((sql) => writer.write(sql, id, [batch])));
      } catch (err) {
        // Rolled back: the partitions it made are gone.
        writer.rolledBack();
        // Anything else (a lost connection, a lock) is retried as any failed write is; the
        // batches stored so far are off the list, so the retry repeats none.
        if (!(err instanceof PoisonLogBatchError) && !isDataError(err)) throw err;
        const cause = err instanceof PoisonLogBatchError && err.cause instanceof Error ? err.cause : err;
        post({
          type: 'quarantined',
          pipelineIds: [id],
          rows: batch.numRows,
          message: err instanceof Error ? err.message : String(err),
          stack: cause instanceof Error ? (cause.stack ?? cause.message) : String(cause),
        });
      }
      list.shift();
    }
    batches.delete(id);
    isolate.delete(id);
  }
}

/**
 * Stores what has come (or retries what a failed attempt held) in one transaction, pipelines
 * in id order (the order their heads are locked in), or for one pipeline in one statement
 * (`writeAlone`): a retry, or a restarted thread given the same rows again, neither loses nor
 * repeats rows. Rows that come meanwhile wait for the next.
 */
async function writeBacklog(): Promise<void> {
  if (writing === null) {
    writing = { batches: new Map(backlog), seq: backlogSeq };
    backlog.clear();
  }
  const { batches, seq } = writing;
  if (isolate.size > 0) await writeIsolated(batches);
  const pipelineIds = [...batches.keys()].sort((a, b) => a - b);
  // One pipeline (the common case) goes in one statement when the writer knows its head.
  const only = pipelineIds.length === 1 ? pipelineIds[0]! : null;
  if (pipelineIds.length === 0) {
    // Nothing left to store (every pipeline was isolated).
  } else if (only === null || !(await writer.writeAlone(db, only, batches.get(only) ?? []))) {
    const schemas = await db.transaction(async (sql) => {
      // Several pipelines: their partitions first, before any insert (heads in id order).
      if (only === null) {
        for (const id of pipelineIds) await writer.preparePartitions(sql, id, batches.get(id) ?? []);
      }
      const inserted: string[] = [];
      for (const id of pipelineIds) inserted.push(...(await writer.write(sql, id, batches.get(id) ?? [])));
      return inserted;
    });
    writer.committed(schemas);
  }
  writing = null;
  writtenSeq = seq;
  // Confirmed before the retention pass: the owner gives unconfirmed rows to a restarted thread.
  post({ type: 'committed', writtenSeq });
  await retentionPass();
}

/**
 * Retention passes in a row that left work due (see `retentionDue`): the retry's backoff. A
 * pass that found the total cap's lock taken (its holder's step may yet fail, or stall and be
 * ended), passed a held head over, or failed, would otherwise wait for this node's next write:
 * a cluster gone quiet kept that excess. It is tried again on its own, while the thread is
 * idle, after `retentionRetryDelayMs`, doubling up to `maxRetentionRetryDelayMs`, until a
 * pass leaves nothing due. The retry takes the same lock as any pass (so nothing is dropped
 * twice), none starts once a stop has come, and a stop cancels the timer of one waiting.
 * A thread starts with one pass due (after the first wait, with or without a write): the
 * thread before it (crashed, or the node's last run) may have left the total over its cap.
 */
let retentionMisses = 1;
/** Set by the retry's timer: the next turn of the loop runs a pass without a write. */
let retentionRetryDue = false;

/** The retention pass after a write (or a retry of one), then the vacuum it may make due. */
async function retentionPass(): Promise<void> {
  retentionRetryDue = false;
  try {
    await writer.enforceTotalRetention(db, (fn) => db.transaction(fn));
  } finally {
    retentionMisses = writer.retentionDue ? retentionMisses + 1 : 0;
  }
  vacuumIfDue();
}

/** The wait before the next retry of a pass that left work due. */
function retentionRetryDelay(): number {
  const exponent = Math.min(30, Math.max(0, retentionMisses - 1));
  return timerDelay(
    Math.min(settings.maxRetentionRetryDelayMs, settings.retentionRetryDelayMs * 2 ** exponent),
  );
}

/** The vacuum running, if one is: at most one at a time. */
let vacuuming: Promise<void> | null = null;
/** The backend running it (to cancel it at stop), and whether it was cancelled. */
let vacuumPid: number | null = null;
let vacuumCancelled = false;
const vacuumStatement = settings.vacuumStatement ?? VACUUM_LOG_BATCHES;

/** Resolves once no vacuum runs. */
function vacuumEnded(): Promise<void> {
  return vacuuming ?? Promise.resolve();
}

/**
 * Once the trims have deleted enough, vacuums the batches table on a client of its own (the
 * pool's second), not awaited: writes, their `ready` (acks, read-your-writes) and the queue
 * behind them never wait for it (it takes no lock that inserts or deletes wait for). A failure
 * is reported and changes nothing else: the rows are stored, and the next vacuum comes after
 * another quarter of the cap is trimmed (a vacuum that keeps failing is not retried at every
 * write). None starts once a stop has come, and a stop cancels a running one: the statement
 * under way is cancelled and no other partition's detach is begun.
 */
function vacuumIfDue(): void {
  if (vacuuming !== null || stopSeq !== null) return;
  // The partitions retention emptied are detached and dropped on the same client, first.
  const detach = writer.takeDetachDue();
  const vacuumDue = writer.takeVacuumDue();
  if (!detach && !vacuumDue) return;
  vacuumCancelled = false;
  vacuuming = vacuum(detach, vacuumDue).then(
    () => {
      vacuuming = null;
    },
    (err: unknown) => {
      vacuuming = null;
      if (vacuumCancelled) return;
      post({ type: 'vacuum-failed', message: err instanceof Error ? err.message : String(err) });
    },
  );
}

async function vacuum(detach: boolean, vacuumDue: boolean): Promise<void> {
  const client = await db.pool.connect();
  // A connection lost while checked out emits 'error' on the client: without a listener it
  // would end the thread. The query rejects too, and the client is discarded on release.
  let broken: Error | undefined;
  const onError = (err: Error): void => {
    broken = err;
  };
  client.on('error', onError);
  try {
    // A stop that came while the connection was opening had no backend to cancel: skip.
    if (stopSeq !== null) return;
    vacuumPid = (client as unknown as { processID?: number }).processID ?? null;
    // No other partition is begun once a stop has come (it cancels the statement under way).
    let detachFailure: Error | null = null;
    if (detach) {
      try {
        await detachEmptiedPartitions(
          (text, values) => client.query(text, values as unknown[]),
          () => stopSeq !== null,
        );
      } catch (err) {
        detachFailure = err instanceof Error ? err : new Error(String(err));
      }
    }
    // The vacuum that is due runs even when the detach failed (takeVacuumDue has reset its count).
    if (vacuumDue && stopSeq === null && !isCancelled(detachFailure)) await client.query(vacuumStatement);
    if (detachFailure !== null) throw detachFailure;
  } catch (err) {
    broken ??= err instanceof Error ? err : new Error(String(err));
    throw err;
  } finally {
    vacuumPid = null;
    client.off('error', onError);
    client.release(broken);
  }
}

/** Whether `err` is a statement cancelled (57014: the stop's `pg_cancel_backend`). */
function isCancelled(err: Error | null): boolean {
  return err !== null && sqlState(err) === PG_QUERY_CANCELED;
}

/** At stop: a running vacuum is cancelled (the next one, on any node, does its work). */
function cancelVacuum(): void {
  const pid = vacuumPid;
  if (vacuuming === null || pid === null) return;
  vacuumCancelled = true;
  db.run('SELECT pg_cancel_backend($1)', [pid]).catch(() => undefined);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      wake = null;
      resolve();
    }, ms);
    // Stop cuts a retry wait short.
    wake = () => {
      clearTimeout(timer);
      resolve();
    };
  });
}

/**
 * Waits for a message (rows, or the stop), or, while a retention pass left work due and no
 * stop has come, for the retry's timer; a message cancels the timer.
 */
function idle(): Promise<void> {
  return new Promise<void>((resolve) => {
    let timer: NodeJS.Timeout | null = null;
    if (retentionMisses > 0 && stopSeq === null) {
      timer = setTimeout(() => {
        wake = null;
        retentionRetryDue = true;
        resolve();
      }, retentionRetryDelay());
    }
    wake = () => {
      if (timer !== null) clearTimeout(timer);
      resolve();
    };
  });
}

async function run(): Promise<boolean> {
  let failures = 0;
  let stopFailures = 0;
  for (;;) {
    try {
      if (writing !== null || backlog.size > 0) {
        await writeBacklog();
        if (failures > 0) post({ type: 'recovered' });
        failures = 0;
      } else if (retentionRetryDue && stopSeq === null) {
        await retentionPass();
        if (failures > 0) post({ type: 'recovered' });
        failures = 0;
      }
      if (backlog.size > 0) continue;
      if (stopSeq !== null && writtenSeq >= stopSeq) return true;
      // Committed batches are no longer read (the driver has sent their bytes), so their arenas can be reused.
      let n = 0;
      while (n < arenas.length && arenas[n]!.seq <= writtenSeq) n++;
      post({ type: 'ready', writtenSeq, arenas: arenas.splice(0, n).map((a) => a.arena) });
      await idle();
    } catch (err) {
      // The write's transaction rolled back: the partitions it made are gone.
      writer.rolledBack();
      if (writing !== null && (err instanceof PoisonLogBatchError || isDataError(err))) {
        // Not a database failure: retrying the same rows would fail forever and hold every
        // pipeline's log. Store the pipelines they may belong to one batch at a time, at once.
        const ids = err instanceof PoisonLogBatchError ? [err.pipelineId] : [...writing.batches.keys()];
        if (ids.some((id) => !isolate.has(id))) {
          for (const id of ids) isolate.add(id);
          continue;
        }
      }
      const error = err instanceof Error ? err : new Error(String(err));
      failures++;
      const base = {
        type: 'write-failed',
        message: error.message,
        stack: error.stack ?? error.message,
        attempt: failures,
      } as const;
      if (stopSeq !== null && ++stopFailures >= settings.stopAttempts) {
        post({ ...base, retryInMs: null });
        return false;
      }
      if (writing === null && stopSeq === null) {
        // The rows are committed and the retention pass after them failed (its step rolled
        // back, its drop with it): flushes are answered now, and the pass is tried again on its
        // own, after the retry's backoff (see retentionMisses), with or without a write.
        post({ ...base, retryInMs: retentionRetryDelay() });
        continue;
      }
      const delay = Math.min(settings.maxRetryDelayMs, settings.retryDelayMs * 2 ** (failures - 1));
      const wait = stopSeq !== null ? Math.min(delay, settings.retryDelayMs) : delay;
      post({ ...base, retryInMs: wait });
      await sleep(wait);
    }
  }
}

const written = await run();
// A vacuum still running ends first (the pool closes once its connections are back).
await vacuumEnded();
await db.close();
post({ type: 'stopped', failed: !written });
// Without a listener nothing keeps the thread alive: it ends once the message is sent.
port.removeAllListeners('message');
port.unref();
