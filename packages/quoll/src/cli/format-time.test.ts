import { describe, expect, it } from 'vitest';
import { formatTime } from './format-time.js';

describe('formatTime', () => {
  it('prints every form of a time as ISO 8601 UTC with milliseconds', () => {
    expect(formatTime('2024-12-09T21:21:40.373619457Z')).toBe('2024-12-09T21:21:40.373Z');
    expect(formatTime('2024-12-09T22:21:40+01:00')).toBe('2024-12-09T21:21:40.000Z');
    expect(formatTime(1_733_779_300_373)).toBe('2024-12-09T21:21:40.373Z');
    expect(formatTime(new Date(Date.UTC(2026, 11, 1, 13, 41, 51)))).toBe('2026-12-01T13:41:51.000Z');
  });

  it('leaves what is not a time alone', () => {
    expect(formatTime(null)).toBe('-');
    expect(formatTime(undefined)).toBe('-');
    expect(formatTime('soon')).toBe('soon');
  });
});
