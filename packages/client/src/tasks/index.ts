export { Task, TaskList } from './task.js';
export type { LastRunsOptions } from './task.js';
export { TaskRun, TaskRunList, TaskRunLogLine, TaskRunLogs } from './task-run.js';
export { TaskTick, TaskTickList } from './task-tick.js';
export { displayTime } from './display-time.js';
