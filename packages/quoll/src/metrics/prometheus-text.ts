/**
 * The Prometheus text exposition format (version 0.0.4), written by hand: each family's
 * `# HELP` and `# TYPE` lines, then one line per sample, `name{labels} value`.
 */

/** Content type of the text format. */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** A label value escaped for the text format (backslash, newline, double quote). */
export function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

/** A sample value as the text format spells it (`NaN`, `+Inf`, `-Inf`, else the number). */
export function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}

/** A family's `# HELP` and `# TYPE` lines, newline-terminated (built once per family). */
export function header(name: string, type: 'counter' | 'gauge' | 'histogram', help: string): string {
  return `# HELP ${name} ${help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}\n# TYPE ${name} ${type}\n`;
}

/**
 * The start of each `_bucket` line of a histogram family, `name_bucket{le="…"`, one per upper
 * bound and `+Inf` last (built once per family; {@link histogramText} adds labels and counts).
 */
export function bucketPrefixes(name: string, bounds: readonly number[]): string[] {
  return [...bounds.map((b) => `${name}_bucket{le="${formatValue(b)}"`), `${name}_bucket{le="+Inf"`];
}

/**
 * One histogram series: its `_bucket` lines (counts made cumulative), `_sum` and `_count`.
 * `buckets` holds the count of each bucket alone, `+Inf` last; `labels` is `a="x",b="y"` or ''.
 */
export function histogramText(
  name: string,
  prefixes: readonly string[],
  buckets: ArrayLike<number>,
  sum: number,
  count: number,
  labels: string,
): string {
  const rest = labels === '' ? '} ' : `,${labels}} `;
  let text = '';
  let cumulative = 0;
  for (let i = 0; i < prefixes.length; i++) {
    cumulative += buckets[i]!;
    text += `${prefixes[i]!}${rest}${cumulative}\n`;
  }
  const braces = labels === '' ? ' ' : `{${labels}} `;
  return `${text}${name}_sum${braces}${formatValue(sum)}\n${name}_count${braces}${count}\n`;
}

/** Index of the first bucket whose upper bound holds `value` (`bounds.length` = `+Inf`). */
export function bucketOf(bounds: readonly number[], value: number): number {
  let i = 0;
  while (i < bounds.length && value > bounds[i]!) i++;
  return i;
}
