import { inspectCustom, PrintableList, renderTable } from '../format/index.js';
import type { TaskTickDto } from '../wire/index.js';
import { displayTime } from './display-time.js';

/**
 * A cron tick of a scheduled task that produced no run: `skipped` (the previous run was
 * still going) or `missed` (the server was down or late).
 */
export class TaskTick implements TaskTickDto {
  readonly taskId: string;
  /** The nominal tick, RFC 3339. */
  readonly tick: string;
  readonly kind: 'skipped' | 'missed';
  readonly reason: string;
  readonly recordedAt: string;

  /** @internal */
  constructor(dto: TaskTickDto) {
    this.taskId = dto.taskId;
    this.tick = dto.tick;
    this.kind = dto.kind;
    this.reason = dto.reason;
    this.recordedAt = dto.recordedAt;
  }

  toJSON(): TaskTickDto {
    return {
      taskId: this.taskId,
      tick: this.tick,
      kind: this.kind,
      reason: this.reason,
      recordedAt: this.recordedAt,
    };
  }

  /** `<tick> <kind>: <reason>` */
  toString(): string {
    return `${displayTime(this.tick)} ${this.kind}: ${this.reason}`;
  }

  [inspectCustom](): string {
    return this.toString();
  }
}

/** Skipped and missed ticks, newest first; prints `tick | kind | reason | recorded at` or `(no skipped or missed ticks)`. */
export class TaskTickList extends PrintableList<TaskTick> {
  /** @internal */
  static of_(ticks: readonly TaskTickDto[]): TaskTickList {
    return TaskTickList.fill(ticks.map((t) => new TaskTick(t)));
  }

  override toString(): string {
    if (this.length === 0) return '(no skipped or missed ticks)';
    return renderTable(
      ['tick', 'kind', 'reason', 'recorded at'],
      this.map((t) => [displayTime(t.tick), t.kind, t.reason, displayTime(t.recordedAt)]),
    );
  }
}
