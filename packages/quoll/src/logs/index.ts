export { InferenceLogStore } from './inference-log-store.js';
export type { InferenceLogStoreOptions, InferenceLogStoreState } from './inference-log-store.js';
export type { InferenceLogs } from './inference-logs.js';
export { admitLogRows, logStoreClosedError, logStoreUnavailableError } from './log-append-rules.js';
export { isLogRowSource } from './log-row-source.js';
export type { LogAppendBatch, LogRowLeaf, LogRowSource } from './log-row-source.js';
export { checkBatchShape, checkLogBatch, checkLogSchema, clampLogTime } from './log-batch-checks.js';
export { LOG_APPEND_ADMITTED, LogAppendQueue } from './log-append-queue.js';
export type { QueuedAppend } from './log-append-queue.js';
export { LogHandOff } from './log-hand-off.js';
export type { LogHandOffOptions, LogItemsMessage } from './log-hand-off.js';
export { ArrowMessageEncoder } from './arrow-message-encoder.js';
export { encodeRecordBatchMessage } from './encode-record-batch-message.js';
export {
  LogBatchPacker,
  LogBatchUnpacker,
  LogPackError,
  LogPackJob,
  PACK_SLICE_BYTES,
} from './log-batch-transfer.js';
export type { PackedBatches, SetAsideReport } from './log-batch-transfer.js';
export { LogStaging, STAGE_MAX_BYTES, StagedRows, StagedRun, kindOf } from './log-staging.js';
export type { LogStagingLimits, StagedEntry, StagedLeaf } from './log-staging.js';
export {
  coalesceLogBatches,
  COALESCE_BELOW_ROWS,
  COALESCE_MAX_BYTES,
  COALESCE_MAX_ROWS,
} from './coalesce-log-batches.js';
export { timeValues } from './segment-file.js';
export { DEFAULT_LOG_LIMIT, DEFAULT_LOG_PAGE_BYTES, planLogQuery } from './query-log-page.js';
export { LogPageBuilder, searchTimes } from './log-page-builder.js';
export type { OfferResult, StoredBatchPosition } from './log-page-builder.js';
export type { LogPage, LogQuery, LogQueryPlan } from './query-log-page.js';
export type { LogRecoveryReport } from './recover-log-segments.js';
export type {
  LogSegmentIndex,
  LogSegmentRecord,
  LogSegmentUpdate,
  NewLogSegment,
} from './log-segment-index.js';
export { encodeLogPage, logPageRecords } from './encode-log-page.js';
export type { LogPageFormat, LogRecord } from './encode-log-page.js';
export { schemaIdOf } from './schema-id.js';
export {
  logQuarantineOf,
  PoisonLogBatchError,
  printLogQuarantine,
  rowStep,
} from './poison-log-batch-error.js';
export type { LogQuarantine } from './poison-log-batch-error.js';
