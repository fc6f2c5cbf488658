export {
  TaskRunner,
  FINAL_LINE_PREFIX,
  LOST_RUN_REASON,
  STOPPED_RUN_REASON,
  UNBOUNDED_RUN_TOKEN_TTL_MS,
} from './task-runner.js';
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
export type { LineSplitterOptions } from './line-splitter.js';
export { resolveTaskUser, restrictHomeForTaskUser } from './task-user.js';
export type { TaskUser } from './task-user.js';
export { WarmPool, LAUNCHER_SOURCE } from './warm-pool.js';
export type { WarmJob, WarmPoolOptions, WarmSpawnSpec } from './warm-pool.js';
