export {
  TaskRunner,
  FINAL_LINE_PREFIX,
  LOST_RUN_REASON,
  STOPPED_RUN_REASON,
  UNBOUNDED_RUN_TOKEN_TTL_MS,
} from './task-runner.js';
export type { TaskRunnerOptions } from './task-runner.js';
export type { PackagedOrchestration, RunHandle, RunOutcome, RunRequest, RunToken } from './run-request.js';
export type { Bind, LaunchedProcess, LaunchSpec, WarmRuntime } from './launch-spec.js';
export { LAUNCH_PROTOCOL_VERSION, decodeLaunchMessage, encodeLaunchMessage } from './launch-protocol.js';
export type { LaunchMessage, LaunchMessageV1 } from './launch-protocol.js';
export type { RunLauncher } from './launchers/run-launcher.js';
export { DirectLauncher } from './launchers/direct-launcher.js';
export { WarmLauncher } from './launchers/warm-launcher.js';
export type { WarmLauncherOptions } from './launchers/warm-launcher.js';
export type { RunPaths, RunRuntime } from './runtimes/run-runtime.js';
export { NodeRuntime, NODE_ENV_ALLOW, NODE_FLAGS } from './runtimes/node-runtime.js';
export type { NodeRuntimeOptions } from './runtimes/node-runtime.js';
export { NODE_LAUNCHER_SOURCE } from './runtimes/node-launcher-source.js';
export { BwrapLauncher, SANDBOX_ROOT, SANDBOX_WORK_DIR } from './launchers/bwrap-launcher.js';
export type { BwrapLauncherOptions } from './launchers/bwrap-launcher.js';
export { DEFAULT_SANDBOX_USER, setUpSandbox } from './sandbox.js';
export type { SandboxMode, SandboxOptions, SandboxSetup, SandboxStatus, TaskNetwork } from './sandbox.js';
export { NO_LIMITS, prlimitArgs, tighterLimits } from './resource-limits.js';
export {
  DEFAULT_DISK_CHECK_INTERVAL_MS,
  DEFAULT_DISK_MAX_ENTRIES,
  DISK_LIMIT_REASON_PREFIX,
  DiskWatcher,
  diskLimitReason,
} from './disk-watcher.js';
export type { DiskWatcherOptions } from './disk-watcher.js';
export { measureDiskUsage } from './disk-usage.js';
export { removeRunDir } from './run-directory.js';
export type { DiskUsage } from './disk-usage.js';
export type { ResourceLimits } from './resource-limits.js';
export { startApiForwarder } from './api-forwarder.js';
export type { ApiForwarder } from './api-forwarder.js';
export { findExecutable } from './find-executable.js';
export type { RunEnded, RunLogStore, RunLogWriter } from './run-log-store.js';
export {
  DEFAULT_RUN_LOG_MAX_BYTES,
  DEFAULT_RUN_LOG_MAX_BYTES_TOTAL,
  FileRunLogStore,
} from './file-run-log-store.js';
export { formatBytes } from './format-bytes.js';
export { CLOSING_ROOM, QueuedRunLogWriter } from './queued-run-log-writer.js';
export type { QueuedRunLogLine, StoredRunLogLine } from './queued-run-log-writer.js';
export type { FileRunLogStoreOptions } from './file-run-log-store.js';
export { NanoTimestamper, formatNanos } from './nano-timestamper.js';
export { LineSplitter } from './line-splitter.js';
export type { LineSplitterOptions } from './line-splitter.js';
export { resolveTaskUser, restrictHomeForTaskUser } from './task-user.js';
export type { TaskUser } from './task-user.js';
export { ProcessLedger } from './process-ledger.js';
export type { LedgerEntry, LeftoverReport, ProcessRecorder } from './process-ledger.js';
export {
  PythonRuntime,
  PYTHON_ENV_ALLOW,
  PYTHON_ENV_META,
  pythonInstallBinds,
} from './runtimes/python-runtime.js';
export type { PythonEnvMeta, PythonRuntimeOptions } from './runtimes/python-runtime.js';
export { MIN_PYTHON, PythonInterpreter } from './runtimes/python-interpreter.js';
export type { PythonInfo, PythonProbe } from './runtimes/python-interpreter.js';
