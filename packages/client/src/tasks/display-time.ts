const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/**
 * A timestamp as the seed prints orchestrations, tasks and runs: `%Y-%d-%b %H:%M:%S` in UTC
 * (year-day-month, e.g. `2024-09-Dec 21:21:31`). Text that is not a date is returned as is.
 * @example displayTime('2024-12-09T21:21:31.123Z') // '2024-09-Dec 21:21:31'
 */
export function displayTime(iso: string | null | undefined): string {
  if (iso === null || iso === undefined) return '-';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const two = (n: number): string => String(n).padStart(2, '0');
  return (
    `${d.getUTCFullYear()}-${two(d.getUTCDate())}-${MONTHS[d.getUTCMonth()] ?? '?'} ` +
    `${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())}`
  );
}
