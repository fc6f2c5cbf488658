import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RecordBatch } from 'apache-arrow';
import { afterAll } from 'vitest';
import { LogBatchPacker } from '../../packages/quoll/src/logs/log-batch-transfer.js';
import type { PackedBatches } from '../../packages/quoll/src/logs/log-batch-transfer.js';
import type { InferenceLogs } from '../../packages/quoll/src/logs/inference-logs.js';
import type {
  FromWriter,
  LogWriterSettings,
  ToWriter,
} from '../../packages/quoll/src/logs/log-writer-protocol.js';
import { InferenceLogStore } from '../../packages/quoll/src/logs/inference-log-store.js';
import { LogWriterThread } from '../../packages/quoll/src/logs/log-writer-thread.js';
import {
  LOG_T0,
  inferenceLogRows,
  logPageIds,
} from '../../packages/quoll/src/store/conformance/inference-log-rows.js';
import type {
  FromPostgresLogWriter,
  PostgresLogWriterSettings,
} from '../../packages/quoll/src/store/postgres/postgres-log-writer-protocol.js';
import { openStore } from '../../packages/quoll/src/store/open-store.js';
import { spawnModuleWorker } from '../../packages/quoll/src/threads/index.js';

/** Rows `ids` of the test rows' schema, at LOG_T0 + id × 10. */
export const rowsOf = (ids: number[]): RecordBatch =>
  inferenceLogRows(
    ids,
    ids.map((id) => LOG_T0 + id * 10),
  );

/** A fresh temporary folder for one test file's writers, removed after its tests. */
export function tempRoot(prefix: string): string {
  const root = mkdtempSync(join(tmpdir(), prefix));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  return root;
}

/**
 * Spoils a packed hand-off after every check, as a writer thread could still be given it. The
 * meta of a packed batch: schema id, rows, then per column offset, length, null count, children
 * and four buffers of kind, byte offset, length.
 */
export type Spoil = (body: PackedBatches) => void;

/** The first buffer of the first column names a kind of typed array that does not exist. */
export const unknownBufferKind: Spoil = (body) => (body.meta[6] = 99);
/** The batch names a schema the writer was never sent. */
export const unknownSchema: Spoil = (body) => (body.meta[0] = 12_345);
/** The time column unpacks without values (the kind of its values buffer says "none"). */
export const noTimeValues: Spoil = (body) => (body.meta[9] = -1);
/** 50 rows said, 5 held. */
export const overstatedRows: Spoil = (body) => (body.meta[1] = 50);

/** A poison hand-off of pipeline 1's 5 rows, and the rows its set-aside report tells. */
export interface Poison {
  name: string;
  spoil: Spoil;
  rows: number | null;
}

/**
 * Poison hand-offs as a writer thread could be given them after every check: ones its unpacker
 * cannot read, and ones it reads into a batch that cannot be written.
 */
export const POISONS: readonly Poison[] = [
  // Only that batch is set aside, the message's other batches are still read.
  { name: 'a batch that cannot be unpacked', spoil: unknownBufferKind, rows: 5 },
  // The message cannot be told apart into batches, so it is set aside whole.
  { name: 'a hand-off that cannot be walked', spoil: unknownSchema, rows: null },
  // Reading its times to keep them non-decreasing throws.
  { name: 'a batch that unpacks but cannot be written', spoil: noTimeValues, rows: 5 },
  // Written as it is, it would store a batch its readers cannot read; told as the rows it says it has.
  { name: "a batch whose row count is not its columns'", spoil: overstatedRows, rows: 50 },
];

/**
 * The embedded writer's settings for a test: small retry delays, large segments (`overrides`
 * replaces any of them).
 */
export function logWriterSettings(
  dir: string,
  overrides: Partial<LogWriterSettings> = {},
): LogWriterSettings {
  return {
    dir,
    syncIntervalMs: 20,
    segmentMaxRows: 1_000_000,
    segmentMaxBytes: 64 * 1024 * 1024,
    maxBytesPerPipeline: 1024 ** 3,
    maxBytesTotal: 1024 ** 3,
    retryDelayMs: 10,
    maxRetryDelayMs: 50,
    stopAttempts: 3,
    startSeq: 0,
    ...overrides,
  };
}

/** The PostgreSQL writer's settings for a test, with the same retries as {@link logWriterSettings}. */
export function postgresLogWriterSettings(url: string, schema: string): PostgresLogWriterSettings {
  return {
    url,
    schema,
    nodeId: 'node-1',
    maxBytesPerPipeline: 1024 ** 3,
    maxBytesTotal: 1024 ** 3,
    retentionLockWaitMs: 1000,
    retentionRetryDelayMs: 1000,
    maxRetentionRetryDelayMs: 60_000,
    retryDelayMs: 10,
    maxRetryDelayMs: 50,
    stopAttempts: 3,
    confirmedSeq: 0,
  };
}

/** A writer thread as a test drives it: either writer takes the same `items` and `stop` messages. */
export interface WriterUnderTest {
  post(message: Extract<ToWriter, { type: 'items' | 'stop' }>, transfer?: ArrayBuffer[]): void;
  readonly exited: Promise<unknown>;
  terminate(): Promise<unknown>;
  /** The types of the messages it has sent so far (for a failure's message). */
  told(): string[];
}

/** An embedded store's writer thread started by {@link startSqliteLogWriter}, and what it has said. */
export interface StartedLogWriterThread {
  writer: WriterUnderTest;
  /** The type of every message it sent, in order. */
  messages: FromWriter['type'][];
  quarantined: Extract<FromWriter, { type: 'quarantined' }>[];
  /** Its exit's error: `null` for a clean exit, `undefined` while it runs. */
  exitError: Error | null | undefined;
  /**
   * Once the writer has ended: the ids of each pipeline's stored rows (see {@link storedIds}),
   * read through a fresh log store; closes the store.
   */
  storedIds(pipelineIds: number[]): Promise<number[][]>;
}

/**
 * Opens a fresh embedded (SQLite) store in a new folder under `root` and starts its log writer
 * thread with {@link logWriterSettings}, keeping every message it sends.
 */
export async function startSqliteLogWriter(root: string): Promise<StartedLogWriterThread> {
  const dir = mkdtempSync(join(root, 'logs-'));
  const stores = await openStore({ kind: 'sqlite', path: join(dir, 'quoll.db') });
  const messages: FromWriter['type'][] = [];
  const quarantined: Extract<FromWriter, { type: 'quarantined' }>[] = [];
  const thread = new LogWriterThread(logWriterSettings(dir), stores.logIndex, {
    message: (msg) => {
      messages.push(msg.type);
      if (msg.type === 'quarantined') quarantined.push(msg);
    },
    indexCalled: () => undefined,
    exit: (error) => (started.exitError = error),
  });
  const started: StartedLogWriterThread = {
    writer: {
      post: (message, transfer) => thread.send(message, transfer),
      exited: thread.exited,
      terminate: () => thread.terminate(),
      told: () => messages,
    },
    messages,
    quarantined,
    exitError: undefined,
    storedIds: async (pipelineIds) => {
      const store = await InferenceLogStore.open({ dir, index: stores.logIndex });
      try {
        return await storedIds(store, pipelineIds);
      } finally {
        await store.stop();
        await stores.close();
      }
    },
  };
  return started;
}

/** A PostgreSQL writer worker started by {@link startPostgresLogWriterWorker}, and what it has said. */
export interface StartedPostgresLogWriter {
  writer: WriterUnderTest;
  /** Every message it sent, in order. */
  messages: FromPostgresLogWriter[];
  /** Its exit code, `null` while it runs. */
  exitCode: number | null;
}

/** Starts the PostgreSQL store's writer worker, keeping every message it sends. */
export function startPostgresLogWriterWorker(settings: PostgresLogWriterSettings): StartedPostgresLogWriter {
  const worker = spawnModuleWorker(
    new URL('../../packages/quoll/src/store/postgres/postgres-log-writer-worker.ts', import.meta.url).href,
    'postgres-log-writer-worker',
    { workerData: settings },
  );
  const messages: FromPostgresLogWriter[] = [];
  worker.on('message', (msg: FromPostgresLogWriter) => messages.push(msg));
  const exited = new Promise<void>((resolve) =>
    worker.once('exit', (code) => {
      started.exitCode = code;
      resolve();
    }),
  );
  const started: StartedPostgresLogWriter = {
    writer: {
      post: (message, transfer = []) => worker.postMessage(message, transfer),
      exited,
      terminate: () => worker.terminate(),
      told: () => messages.map((m) => m.type),
    },
    messages,
    exitCode: null,
  };
  return started;
}

/** One `items` message: a group of batches per pipeline, spoiled after packing when `spoil` is given. */
export interface HandOff {
  seq: number;
  groups: RecordBatch[][];
  pipelineIds: number[];
  spoil?: Spoil;
}

/**
 * Packs and sends `handOffs` in order, then `stop` after the last, and waits (20 s at most) for
 * the writer to end; the writer is terminated in any case.
 */
export async function sendHandOffsAndStop(writer: WriterUnderTest, handOffs: HandOff[]): Promise<void> {
  const packer = new LogBatchPacker();
  let timer: NodeJS.Timeout | undefined;
  try {
    for (const { seq, groups, pipelineIds, spoil } of handOffs) {
      const job = packer.begin(groups);
      job.step(Number.MAX_SAFE_INTEGER);
      spoil?.(job.body);
      writer.post({ type: 'items', seq, pipelineIds, body: job.body }, [job.body.arena]);
    }
    writer.post({ type: 'stop', lastSeq: handOffs.at(-1)?.seq ?? 0 });
    await Promise.race([
      writer.exited,
      new Promise((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`the writer did not stop: ${writer.told().join(' ')}`)),
          20_000,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
    await writer.terminate();
  }
}

/** The ids of each pipeline's stored rows, oldest first (100 at most a pipeline). */
export async function storedIds(store: InferenceLogs, pipelineIds: number[]): Promise<number[][]> {
  const ids: number[][] = [];
  for (const pipelineId of pipelineIds) {
    ids.push(logPageIds(await store.query(pipelineId, { limit: 100, order: 'asc' })));
  }
  return ids;
}
