import { ERROR_CODES } from '@quoll/client/wire';
import { QuollError, renderFields, renderTable, type Cell } from '@quoll/client';

/** Options every client command takes. */
export interface OutputOptions {
  json?: boolean;
}

/** Prints rows as a table, or as JSON with `--json`. */
export function printRows<T>(opts: OutputOptions, items: T[], columns: [string, (item: T) => Cell][]): void {
  if (opts.json) {
    process.stdout.write(JSON.stringify(items, null, 2) + '\n');
    return;
  }
  process.stdout.write(
    renderTable(
      columns.map(([h]) => h),
      items.map((it) => columns.map(([, f]) => f(it))),
    ) + '\n',
  );
}

/** Prints one object: JSON with `--json`, else its table form (an SDK object's own, or field/value rows). */
export function printObject(opts: OutputOptions, value: object): void {
  if (opts.json) {
    process.stdout.write(JSON.stringify(value, null, 2) + '\n');
    return;
  }
  if (value.toString !== Object.prototype.toString) {
    process.stdout.write((value as { toString(): string }).toString() + '\n');
    return;
  }
  const fields = Object.entries(value).map(([k, v]): [string, Cell] => [
    k,
    v === null || typeof v !== 'object' ? (v as Cell) : JSON.stringify(v),
  ]);
  process.stdout.write(renderFields(fields) + '\n');
}

/** Prints an error the way users should see it and returns the exit code. */
export function reportError(err: unknown): number {
  if (err instanceof QuollError) {
    process.stderr.write(`error [${err.code}]: ${err.message}\n`);
    // By the catalogue's kind, so errors the SDK raises itself (status 0) count as client errors too.
    if (ERROR_CODES[err.code].kind !== 'internal') return 2;
    return err.status === 0 ? 1 : 3;
  }
  const e = err as { code?: string; message?: string; exitCode?: number };
  if (typeof e?.code === 'string' && e.code.startsWith('commander.')) return e.exitCode ?? 1;
  process.stderr.write(`error: ${e?.message ?? String(err)}\n`);
  return 1;
}
