export { CronSchedule, normalizeSchedule, validateTimezone } from './cron-schedule.js';
export { CronScheduler, MISSED_WHILE_DOWN, MISSED_WHILE_LATE } from './cron-scheduler.js';
export type { CronSchedulerOptions, ScheduledTaskRef } from './cron-scheduler.js';
export { RestartBackoff, DEFAULT_BACKOFF } from './restart-backoff.js';
export type { BackoffPolicy, RestartDecision } from './restart-backoff.js';
export { nodeLostReason, TaskService } from './task-service.js';
export type {
  CreateOnceInput,
  CreateScheduledInput,
  CreateTaskInput,
  TaskObserver,
  TaskServiceOptions,
} from './task-service.js';
export { toTaskDto, toTaskRunDto, toTaskTickDto } from './task-dto.js';
export type {
  ClaimOptions,
  ListRunsFilter,
  RunPosition,
  ListTasksFilter,
  HeldRun,
  NewTask,
  RunOwner,
  RunResult,
  TaskLimits,
  TaskRecord,
  TaskRunsAs,
  TaskRunRecord,
  TaskStore,
  TickOutcome,
  TickRecord,
} from './task-store.js';
