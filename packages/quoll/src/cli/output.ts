import { ERROR_CODES, type ErrorCode } from '@quoll/client/wire';
import { QuollError } from '@quoll/client/errors';
import { renderFields, renderTable, type Cell } from '@quoll/client/format';
import { cliTerms } from './cli-hints.js';
import { nativeModuleHint } from './native-module-hint.js';
import type { Column } from './views.js';

/** Options every client command takes. */
export interface OutputOptions {
  json?: boolean;
}

/**
 * Prints rows as a table (`empty`, e.g. `(no tasks)`, when there are none), or as JSON with `--json`.
 */
export function printRows<T>(
  opts: OutputOptions,
  items: readonly T[],
  columns: readonly Column<T>[],
  empty = '(no rows)',
): void {
  if (opts.json) {
    process.stdout.write(JSON.stringify(items, null, 2) + '\n');
    return;
  }
  if (items.length === 0) {
    process.stdout.write(`${empty}\n`);
    return;
  }
  process.stdout.write(
    renderTable(
      columns.map(([h]) => h),
      items.map((it) => columns.map(([, f]) => f(it))),
    ) + '\n',
  );
}

/** Prints one object as field/value rows, or as JSON with `--json`. */
export function printOne<T extends object>(opts: OutputOptions, item: T, fields: readonly Column<T>[]): void {
  if (opts.json) {
    process.stdout.write(JSON.stringify(item, null, 2) + '\n');
    return;
  }
  process.stdout.write(renderFields(fields.map(([h, f]): [string, Cell] => [h, f(item)])) + '\n');
}

/** Prints a plain object (a summary the CLI made): JSON with `--json`, else its fields. */
export function printObject(opts: OutputOptions, value: object): void {
  if (opts.json) {
    process.stdout.write(JSON.stringify(value, null, 2) + '\n');
    return;
  }
  const fields = Object.entries(value).map(([k, v]): [string, Cell] => [
    k,
    v === null || typeof v !== 'object' ? (v as Cell) : JSON.stringify(v),
  ]);
  process.stdout.write(renderFields(fields) + '\n');
}

/** How {@link reportError} prints. */
export interface ErrorReportOptions {
  /** `--json` was given: print `{"error": {"code", "message", "details"?}}` on stdout instead of text on stderr. */
  json?: boolean;
}

/** An error as the CLI reports it. */
interface Reported {
  code: ErrorCode | 'usage';
  message: string;
  details?: Record<string, unknown>;
  exitCode: number;
}

/** What an error means for the user: catalogue code, message in CLI terms, exit code. */
function classify(err: unknown): Reported | null {
  if (err instanceof QuollError) {
    // By the catalogue's kind, so errors the SDK raises itself (status 0) count as client errors too.
    const exitCode = ERROR_CODES[err.code].kind !== 'internal' ? 2 : err.status === 0 ? 1 : 3;
    return {
      code: err.code,
      message: cliTerms(err.message),
      ...(err.details ? { details: err.details } : {}),
      exitCode,
    };
  }
  const e = err as { code?: unknown; message?: unknown; exitCode?: unknown } | null;
  if (typeof e?.code === 'string' && e.code.startsWith('commander.')) {
    const exitCode = typeof e.exitCode === 'number' ? e.exitCode : 1;
    // --help and --version end with exit code 0: nothing to report.
    if (exitCode === 0) return null;
    const text = typeof e.message === 'string' ? e.message : '';
    return { code: 'usage', message: text.replace(/^error: /, ''), exitCode };
  }
  const hint = nativeModuleHint(err);
  if (hint !== null) return { code: 'internal_error', message: hint, exitCode: 1 };
  return {
    code: 'invalid_request',
    message: cliTerms(typeof e?.message === 'string' ? e.message : String(err)),
    exitCode: 1,
  };
}

/**
 * Prints an error the way users should see it and returns the exit code: 2 for a client error
 * (bad input, not found, auth), 3 for a server error, 1 when the server cannot be reached or the
 * command line is wrong. Text on stderr (`error [code]: message`), or with `--json` one JSON
 * object on stdout. Commander's usage errors were already printed in text mode.
 */
export function reportError(err: unknown, options: ErrorReportOptions = {}): number {
  const reported = classify(err);
  if (reported === null) return 0;
  const { code, message, details, exitCode } = reported;
  if (options.json) {
    process.stdout.write(
      `${JSON.stringify({ error: { code, message, ...(details ? { details } : {}) } })}\n`,
    );
  } else if (code !== 'usage') {
    const isQuoll = err instanceof QuollError;
    process.stderr.write(isQuoll ? `error [${code}]: ${message}\n` : `error: ${message}\n`);
  }
  return exitCode;
}
