export {
  Orchestration,
  OrchestrationList,
  PackagingLogLine,
  PackagingLogs,
  shortSha,
} from './orchestration.js';
export type { RunContinuouslyOptions, RunOnceOptions, RunScheduledOptions } from './orchestration.js';
