/** A printable cell. */
export type Cell = string | number | boolean | null | undefined;

function cellText(v: Cell): string {
  if (v === null || v === undefined) return '-';
  return String(v);
}

/**
 * Renders rows as an aligned text table with a header rule, like a notebook's table.
 * @example renderTable(['name', 'status'], [['a', 'ready']])
 */
export function renderTable(headers: string[], rows: Cell[][]): string {
  if (rows.length === 0) return '(no rows)';
  const text = rows.map((r) => r.map(cellText));
  const widths = headers.map((h, i) => Math.max(h.length, ...text.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  return [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...text.map(line)].join('\n');
}

/** Renders one object as a two-column field/value table. */
export function renderFields(fields: [string, Cell][]): string {
  const width = Math.max(...fields.map(([k]) => k.length));
  return fields.map(([k, v]) => `${k.padEnd(width)}  ${cellText(v)}`).join('\n');
}
