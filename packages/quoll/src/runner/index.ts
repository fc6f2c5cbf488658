export { TaskRunner, FINAL_LINE_PREFIX, LOST_RUN_REASON, STOPPED_RUN_REASON } from './task-runner.js';
export type {
  PackagedOrchestration,
  RunHandle,
  RunOutcome,
  RunRequest,
  RunToken,
  TaskRunnerOptions,
} from './task-runner.js';
export { RunLogStore, RunLogWriter } from './run-log-store.js';
export { NanoTimestamper, formatNanos } from './nano-timestamper.js';
export { LineSplitter } from './line-splitter.js';
