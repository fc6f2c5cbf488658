import { ValidationError } from '../errors/index.js';

/**
 * The parts of an `apache-arrow` module (`import * as arrow from 'apache-arrow'`, any version
 * ≥ 15) that the SDK uses when you hand it yours: its `Table` class, and its own IPC writer and
 * reader, so Tables cross between your copy and the SDK's as Arrow IPC bytes.
 * @example
 *   import * as arrow from 'apache-arrow';
 *   const result = await pipeline.infer(myTable, { arrow }); // result is an arrow.Table of your copy
 */
export interface ArrowModule {
  /** Your copy's `Table` class. */
  readonly Table: abstract new (...args: never[]) => object;
  /** Your copy's `tableToIPC(table, 'file' | 'stream')`. */
  readonly tableToIPC: (table: never, type?: 'file' | 'stream') => Uint8Array;
  /** Your copy's `tableFromIPC(bytes)`. */
  readonly tableFromIPC: (bytes: Uint8Array) => unknown;
}

/** The `Table` type of an {@link ArrowModule}: what `infer(table, { arrow })` answers with. */
export type ArrowTableOf<A extends ArrowModule> = InstanceType<A['Table']>;

/**
 * Checks that `value` is an apache-arrow module the SDK can use.
 * @throws ValidationError naming what is missing (a module older than apache-arrow 9 lacks
 *   `tableToIPC`/`tableFromIPC`).
 */
export function checkArrowModule(value: unknown, option: string): ArrowModule {
  const m = value as Partial<Record<keyof ArrowModule, unknown>> | null;
  const missing = (['Table', 'tableToIPC', 'tableFromIPC'] as const).filter(
    (k) => typeof m?.[k] !== 'function',
  );
  if (missing.length > 0) {
    throw new ValidationError(
      'invalid_request',
      `${option} must be an apache-arrow module (import * as arrow from 'apache-arrow', version 15 or newer); ` +
        `the value given has no ${missing.join(', ')}${missing.length < 3 ? ', so it is an apache-arrow older than 15 or not one' : ''}.`,
      0,
    );
  }
  return value as ArrowModule;
}
