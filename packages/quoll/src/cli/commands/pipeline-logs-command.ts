import { Command, InvalidArgumentError } from 'commander';
import type { LogRecord } from '@quoll/client';
import { ValidationError } from '@quoll/client/errors';
import { clientFrom } from '../client-options.js';
import { formatTime } from '../format-time.js';
import { printRows } from '../output.js';

interface LogsFlags {
  start?: string;
  end?: string;
  limit?: number;
  arrow?: boolean;
  export?: string;
  prefix?: string;
  dataSizeLimit?: string;
  json?: boolean;
}

function formatCell(key: string, v: unknown): string {
  if (key === 'time' && typeof v === 'number') return formatTime(v);
  if (Array.isArray(v)) return `[${v.map((x) => String(x)).join(', ')}]`;
  return String(v);
}

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 1)
    throw new InvalidArgumentError(`give a positive integer (got "${v}").`);
  return n;
}

/**
 * `quoll pipeline logs <pipeline>`: prints the inference log (newest 100 by default, or
 * `--start`/`--end`), writes it to stdout as an Arrow IPC file (`--arrow`), or exports it to
 * numbered files (`--export DIR`).
 */
export function pipelineLogsCommand(): Command {
  return new Command('logs')
    .argument('<pipeline>', 'pipeline name')
    .description(
      'Show the inference log: the newest 100 rows (newest first), or --start/--end (inclusive, oldest first). ' +
        'With --arrow, writes an Arrow IPC file to stdout (redirect it); with --export DIR, writes <prefix>-N.json (or .arrow) files.',
    )
    .option('--start <time>', 'earliest time: epoch ms or RFC 3339 (give with --end)')
    .option('--end <time>', 'latest time: epoch ms or RFC 3339 (give with --start)')
    .option('--limit <n>', 'most rows (default 100 without a range)', positiveInt)
    .option('--arrow', 'Arrow output: an Arrow IPC file on stdout, or .arrow files with --export')
    .option('--export <dir>', 'write the logs to files in <dir> instead of printing them')
    .option('--prefix <prefix>', 'file name prefix with --export (default: the pipeline name)')
    .option('--data-size-limit <size>', 'most bytes to export, e.g. "10 MiB" (default 100 MiB)')
    .option('--json', 'print JSON records')
    .action(async (name: string, opts: LogsFlags, c: Command) => {
      const pipeline = await (await clientFrom(c)).getPipeline(name);
      const range = { start: opts.start, end: opts.end, limit: opts.limit };
      if (opts.export !== undefined) {
        const summary = await pipeline.exportLogs({
          ...range,
          directory: opts.export,
          filePrefix: opts.prefix,
          dataSizeLimit: opts.dataSizeLimit,
          arrow: opts.arrow === true,
        });
        if (opts.json) process.stdout.write(JSON.stringify(summary, null, 2) + '\n');
        else
          process.stdout.write(
            `wrote ${summary.rows} rows to ${summary.files.length ? summary.files.join(', ') : 'no files'}\n`,
          );
        return;
      }
      if (opts.arrow) {
        if (process.stdout.isTTY) {
          throw new ValidationError(
            'invalid_request',
            '--arrow writes binary Arrow IPC to stdout; redirect it to a file (e.g. > logs.arrow) or use --export DIR --arrow.',
            0,
          );
        }
        const table = await pipeline.logs({ ...range, arrow: true });
        const { tableToIPC } = await import('apache-arrow'); // loaded already, with the client
        process.stdout.write(tableToIPC(table, 'file'));
        return;
      }
      const records = await pipeline.logs(range);
      if (opts.json) {
        process.stdout.write(JSON.stringify(records) + '\n');
        return;
      }
      const keys = Object.keys(records[0] ?? {});
      printRows(
        {},
        records,
        keys.map((k): [string, (r: LogRecord) => string] => [k, (r) => formatCell(k, r[k])]),
      );
      process.stdout.write(`(${records.length} rows)\n`);
    });
}
