export { InferenceLogStore } from './inference-log-store.js';
export type { InferenceLogStoreOptions, InferenceLogStoreState } from './inference-log-store.js';
export { DEFAULT_LOG_LIMIT, DEFAULT_LOG_PAGE_BYTES, planLogQuery } from './query-log-page.js';
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
