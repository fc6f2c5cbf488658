import { Cron } from 'croner';
import { ApiError } from '../errors/index.js';

/** What an invalid-schedule message shows as a working example. */
const EXAMPLE = 'e.g. "*/5 * * * *" (every 5 minutes) or "0 2 * * *" (02:00 every day)';

/**
 * Rewrites the seed's comma-separated form to plain cron: a comma followed by whitespace
 * separates fields (`"*\/1, *, *, *, *"` → `"*\/1 * * * *"`), while list commas inside a
 * field (`"1,2,3 * * * *"`) are kept. Surrounding and repeated whitespace is collapsed.
 */
export function normalizeSchedule(schedule: string): string {
  return schedule.trim().replace(/,\s+/g, ' ').replace(/\s+/g, ' ');
}

/**
 * Checks an IANA time zone name and returns its canonical spelling (`"utc"` → `"UTC"`).
 * Throws `ApiError('invalid_schedule')` when the runtime does not know the zone.
 */
export function validateTimezone(timezone: string): string {
  try {
    return new Intl.DateTimeFormat('en-US', { timeZone: timezone }).resolvedOptions().timeZone;
  } catch {
    throw new ApiError(
      'invalid_schedule',
      `Unknown time zone "${timezone}". Use an IANA time zone name such as "UTC", "Europe/Berlin" or "America/New_York", or leave it out for UTC.`,
      { timezone },
    );
  }
}

/**
 * A parsed 5-field cron schedule (minute granularity) in UTC or an IANA time zone.
 *
 * Daylight-saving rules (Vixie cron's, as implemented by croner with
 * `fixedTimeRule: 'no-wildcard'`), shown for America/New_York:
 * - A fixed wall time (minute and hour without `*` or a step, e.g. `30 2 * * *`) that does
 *   not exist on the spring-forward day runs once at the first instant after the gap
 *   (03:00 EDT); a fixed wall time that occurs twice on the fall-back day runs once, at its
 *   first occurrence (01:30 EDT).
 * - Interval patterns (`*\/30 * * * *`) tick at real instants: none fall in the missing
 *   hour, and both occurrences of a repeated hour tick (01:00 EDT, 01:30 EDT, 01:00 EST, …).
 * Every tick is a distinct UTC instant, which is what runs are keyed by.
 *
 * @example
 * const s = CronSchedule.parse('*\/1, *, *, *, *'); // the seed's form
 * s.expression; // '*\/1 * * * *'
 * s.nextAfter(Date.parse('2025-01-01T00:00:30Z')); // Date.parse('2025-01-01T00:01:00Z')
 */
export class CronSchedule {
  private constructor(
    /** The normalised 5-field expression. */
    readonly expression: string,
    /** The IANA time zone the fields are read in. */
    readonly timezone: string,
    private readonly cron: Cron,
  ) {}

  private memo: { ref: number; next: number | null } | null = null;

  /**
   * Parses and validates a schedule. Throws `ApiError('invalid_schedule')` naming the bad
   * schedule (or zone) and showing an example when it is not a 5-field cron expression that
   * ever fires.
   *
   * @param timezone IANA zone the fields are read in. @default 'UTC'
   */
  static parse(schedule: string, timezone?: string | null): CronSchedule {
    if (typeof schedule !== 'string' || schedule.trim() === '') {
      throw new ApiError(
        'invalid_schedule',
        `The schedule is empty. Give a 5-field cron expression, ${EXAMPLE}.`,
        {
          schedule,
        },
      );
    }
    const zone = timezone === undefined || timezone === null ? 'UTC' : validateTimezone(timezone);
    const expression = normalizeSchedule(schedule);
    const fields = expression.split(' ');
    if (fields.length !== 5) {
      throw new ApiError(
        'invalid_schedule',
        `Invalid schedule "${schedule}": expected 5 fields (minute hour day-of-month month day-of-week), found ${fields.length}; ${EXAMPLE}.`,
        { schedule },
      );
    }
    let cron: Cron;
    try {
      cron = new Cron(expression, {
        timezone: zone,
        mode: '5-part',
        paused: true,
        fixedTimeRule: 'no-wildcard',
      });
    } catch (err) {
      const why = err instanceof Error ? err.message.replace(/^CronPattern:\s*/, '') : String(err);
      throw new ApiError('invalid_schedule', `Invalid schedule "${schedule}": ${why}; ${EXAMPLE}.`, {
        schedule,
      });
    }
    if (cron.nextRun(new Date(0)) === null) {
      throw new ApiError(
        'invalid_schedule',
        `Invalid schedule "${schedule}": it never fires (no date matches); ${EXAMPLE}.`,
        {
          schedule,
        },
      );
    }
    return new CronSchedule(expression, zone, cron);
  }

  /** The first tick strictly after `ms` (epoch ms), or null when the schedule never fires again. */
  nextAfter(ms: number): number | null {
    // croner's nextRun costs ~0.1 ms; many tasks share one schedule and ask about the same
    // instant at a boundary, so remember the last answer.
    if (this.memo !== null && this.memo.ref === ms) return this.memo.next;
    const found = this.cron.nextRun(new Date(ms));
    const next = found === null ? null : found.getTime();
    this.memo = { ref: ms, next };
    return next;
  }

  /**
   * The newest ticks `t` with `afterMs < t <= untilMs`, at most `max` of them, oldest first;
   * `truncated` is true when older ticks in the range were left out.
   */
  ticksBetween(afterMs: number, untilMs: number, max: number): { ticks: number[]; truncated: boolean } {
    if (max <= 0 || untilMs <= afterMs) return { ticks: [], truncated: false };
    // Walk backwards from the end so a long outage costs `max` steps, not one per tick.
    const newestFirst = this.cron.previousRuns(max + 1, new Date(untilMs + 1)).map((d) => d.getTime());
    const inRange = newestFirst.filter((t) => t > afterMs && t <= untilMs);
    const truncated = inRange.length > max;
    return { ticks: inRange.slice(0, max).reverse(), truncated };
  }
}
