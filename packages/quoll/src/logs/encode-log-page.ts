import { Vector, tableToIPC } from 'apache-arrow';
import type { Table } from 'apache-arrow';
import type { LogPage } from './query-log-page.js';

/** Wire formats of a log page. */
export type LogPageFormat = 'arrow-stream' | 'json';

/** One log row as JSON: flattened column names, `time` in epoch ms, tensors as number arrays. */
export type LogRecord = Record<string, unknown>;

/** Turns an Arrow cell into plain JSON: lists become arrays, 64-bit integers numbers. */
function plain(value: unknown): unknown {
  if (value === null || value === undefined) return null;
  if (typeof value === 'bigint') return Number(value);
  if (value instanceof Vector) return Array.from(value as Iterable<unknown>, plain);
  if (ArrayBuffer.isView(value) && !(value instanceof DataView)) {
    return Array.from(value as unknown as ArrayLike<number | bigint>, (v) => plain(v));
  }
  if (value instanceof Date) return value.getTime();
  if (typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries((value as { toJSON?: () => object }).toJSON?.() ?? value))
      out[k] = plain(v);
    return out;
  }
  return value;
}

/** The rows of a page's table as records (`{"time": 1713278863370, "in.tensor": [...], ...}`). */
export function logPageRecords(table: Table): LogRecord[] {
  const columns = table.schema.fields.map((f, i) => ({ name: f.name, vector: table.getChildAt(i) }));
  const out: LogRecord[] = new Array<LogRecord>(table.numRows);
  for (let r = 0; r < table.numRows; r++) {
    const rec: LogRecord = {};
    for (const c of columns) rec[c.name] = plain(c.vector?.get(r));
    out[r] = rec;
  }
  return out;
}

/**
 * Encodes a page's rows for the wire: an Arrow IPC stream, or a JSON array of records.
 *
 * @example
 * reply.type('application/vnd.apache.arrow.stream').send(encodeLogPage(page, 'arrow-stream'));
 */
export function encodeLogPage(page: LogPage, format: 'arrow-stream'): Uint8Array;
export function encodeLogPage(page: LogPage, format: 'json'): string;
export function encodeLogPage(page: LogPage, format: LogPageFormat): Uint8Array | string;
export function encodeLogPage(page: LogPage, format: LogPageFormat): Uint8Array | string {
  return format === 'arrow-stream'
    ? tableToIPC(page.table, 'stream')
    : JSON.stringify(logPageRecords(page.table));
}
