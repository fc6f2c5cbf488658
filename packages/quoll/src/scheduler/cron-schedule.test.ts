import { describe, expect, it } from 'vitest';
import { ApiError } from '../errors/index.js';
import { CronSchedule, normalizeSchedule, validateTimezone } from './cron-schedule.js';

const at = (iso: string): number => Date.parse(iso);
const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

/** The ticks after `from`, n of them, as ISO strings. */
function ticks(s: CronSchedule, from: string, n: number): (string | null)[] {
  const out: (string | null)[] = [];
  let t: number | null = at(from);
  for (let i = 0; i < n && t !== null; i++) {
    t = s.nextAfter(t);
    out.push(iso(t));
  }
  return out;
}

function invalid(schedule: string, timezone?: string): ApiError {
  try {
    CronSchedule.parse(schedule, timezone);
  } catch (err) {
    if (err instanceof ApiError) return err;
    throw err;
  }
  throw new Error(`expected ${JSON.stringify(schedule)} to be refused`);
}

describe('normalizeSchedule', () => {
  it('turns the seed comma form into plain cron', () => {
    expect(normalizeSchedule('*/1, *, *, *, *')).toBe('*/1 * * * *');
    expect(normalizeSchedule('  0,  2, *,   *, * ')).toBe('0 2 * * *');
  });

  it('keeps list commas inside a field', () => {
    expect(normalizeSchedule('1,2,3 * * * *')).toBe('1,2,3 * * * *');
    expect(normalizeSchedule('0,30, 1,13, *, *, *')).toBe('0,30 1,13 * * *');
  });
});

describe('CronSchedule', () => {
  it('accepts the seed comma form and ticks every minute in UTC', () => {
    const s = CronSchedule.parse('*/1, *, *, *, *');
    expect(s.expression).toBe('*/1 * * * *');
    expect(s.timezone).toBe('UTC');
    expect(ticks(s, '2025-01-01T00:00:30Z', 2)).toEqual([
      '2025-01-01T00:01:00.000Z',
      '2025-01-01T00:02:00.000Z',
    ]);
  });

  it('gives the next tick strictly after an instant that is itself a tick', () => {
    const s = CronSchedule.parse('*/5 * * * *');
    expect(iso(s.nextAfter(at('2025-01-01T00:05:00Z')))).toBe('2025-01-01T00:10:00.000Z');
    expect(iso(s.nextAfter(at('2025-01-01T00:04:59.999Z')))).toBe('2025-01-01T00:05:00.000Z');
  });

  it('reads the fields in the given time zone', () => {
    const s = CronSchedule.parse('0 9 * * *', 'Europe/Berlin');
    expect(ticks(s, '2025-01-01T00:00:00Z', 1)).toEqual(['2025-01-01T08:00:00.000Z']);
  });

  it.each([
    ['', /empty/],
    ['* * * *', /expected 5 fields .* found 4/],
    ['* * * * * *', /expected 5 fields .* found 6/],
    ['0 0 12 1-15 2 2024', /found 6/],
    ['61 * * * *', /minute/],
    ['x * * * *', /illegal characters/],
    ['@hourly', /found 1/],
    ['0 0 30 2 *', /never fires/],
  ])('refuses %j with invalid_schedule naming it and showing an example', (schedule, why) => {
    const err = invalid(schedule);
    expect(err.code).toBe('invalid_schedule');
    expect(err.message).toMatch(why);
    if (schedule !== '') expect(err.message).toContain(`"${schedule}"`);
    expect(err.message).toContain('e.g. "*/5 * * * *"');
  });

  it('refuses an unknown time zone with invalid_schedule naming it', () => {
    const err = invalid('* * * * *', 'Mars/Olympus_Mons');
    expect(err.code).toBe('invalid_schedule');
    expect(err.message).toContain('"Mars/Olympus_Mons"');
    expect(err.message).toContain('America/New_York');
  });

  it('canonicalises time zone names', () => {
    expect(validateTimezone('utc')).toBe('UTC');
    expect(CronSchedule.parse('* * * * *', 'america/new_york').timezone).toBe('America/New_York');
  });

  describe('daylight saving (America/New_York)', () => {
    // 2025-03-09: 02:00 EST jumps to 03:00 EDT. 2025-11-02: 02:00 EDT falls back to 01:00 EST.
    const ny = (schedule: string): CronSchedule => CronSchedule.parse(schedule, 'America/New_York');

    it('runs a fixed wall time that does not exist in spring-forward once, right after the gap', () => {
      expect(ticks(ny('30 2 * * *'), '2025-03-08T12:00:00Z', 3)).toEqual([
        '2025-03-09T07:00:00.000Z', // 03:00 EDT
        '2025-03-10T06:30:00.000Z', // 02:30 EDT
        '2025-03-11T06:30:00.000Z',
      ]);
    });

    it('runs a fixed wall time that occurs twice in fall-back once, at its first occurrence', () => {
      expect(ticks(ny('30 1 * * *'), '2025-11-01T12:00:00Z', 2)).toEqual([
        '2025-11-02T05:30:00.000Z', // 01:30 EDT; 01:30 EST (06:30Z) does not run
        '2025-11-03T06:30:00.000Z',
      ]);
    });

    it('ticks interval patterns at real instants: none in the missing hour, both repeated hours', () => {
      expect(ticks(ny('*/30 * * * *'), '2025-03-09T06:00:00Z', 3)).toEqual([
        '2025-03-09T06:30:00.000Z', // 01:30 EST
        '2025-03-09T07:00:00.000Z', // 03:00 EDT (02:00 and 02:30 do not exist)
        '2025-03-09T07:30:00.000Z',
      ]);
      expect(ticks(ny('*/30 * * * *'), '2025-11-02T04:45:00Z', 4)).toEqual([
        '2025-11-02T05:00:00.000Z', // 01:00 EDT
        '2025-11-02T05:30:00.000Z', // 01:30 EDT
        '2025-11-02T06:00:00.000Z', // 01:00 EST
        '2025-11-02T06:30:00.000Z', // 01:30 EST
      ]);
    });
  });

  it('lists the newest ticks in a range and says when older ones were left out', () => {
    const s = CronSchedule.parse('* * * * *');
    const from = at('2025-01-01T00:00:00Z');
    expect(s.ticksBetween(from, from + 3 * 60_000, 10)).toEqual({
      ticks: [1, 2, 3].map((m) => from + m * 60_000),
      truncated: false,
    });
    expect(s.ticksBetween(from, from + 10 * 60_000 + 5, 2)).toEqual({
      ticks: [9, 10].map((m) => from + m * 60_000),
      truncated: true,
    });
    expect(s.ticksBetween(from, from + 59_000, 10)).toEqual({ ticks: [], truncated: false });
  });
});
