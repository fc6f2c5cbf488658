export { Pipeline } from './pipeline.js';
export type { DeployOptions, InferenceRecord, InferOptions, InferWithArrowOptions } from './pipeline.js';
export { parseDataSize } from './data-size.js';
export type {
  ExportLogsOptions,
  ExportLogsSummary,
  LogRecord,
  LogRecords,
  LogsOptions,
  LogsResultInfo,
  LogsTable,
  LogsTableOf,
  LogTime,
} from './pipeline-logs.js';
