/**
 * The one way the CLI prints a point in time: ISO 8601 in UTC with milliseconds
 * (`2026-12-01T13:41:51.123Z`, what `Date.prototype.toISOString()` gives), whatever form it
 * arrived in (ISO text with any precision or offset, epoch milliseconds, a Date). Text that is
 * not a time is returned unchanged; null and undefined print as `-`.
 * @example formatTime('2024-12-09T21:21:40.373619457Z') // '2024-12-09T21:21:40.373Z'
 */
export function formatTime(value: string | number | Date | null | undefined): string {
  if (value === null || value === undefined) return '-';
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? String(value) : value.toISOString();
  if (typeof value === 'number')
    return Number.isFinite(value) ? new Date(value).toISOString() : String(value);
  // Date.parse keeps at most milliseconds; longer fractions (nanosecond run-log times) are cut first.
  const trimmed = value.replace(/(\.\d{3})\d+/, '$1');
  const ms = Date.parse(trimmed);
  return Number.isNaN(ms) ? value : new Date(ms).toISOString();
}
