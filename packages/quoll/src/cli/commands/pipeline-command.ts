import { writeFile } from 'node:fs/promises';
import { Command } from 'commander';
import { tableToIPC, type Table } from 'apache-arrow';
import type { InferenceRecord, Pipeline } from '@quoll/client';
import { clientFrom } from '../client-options.js';
import { printObject, printRows, type OutputOptions } from '../output.js';
import { pipelineLogsCommand } from './pipeline-logs-command.js';

const columns: [string, (p: Pipeline) => string | number | boolean][] = [
  ['name', (p) => p.name],
  ['created', (p) => p.createdAt],
  ['deployed', (p) => p.toJSON().deployed],
  [
    'steps',
    (p) =>
      p
        .toJSON()
        .steps.map((s) => s.model.name)
        .join(', '),
  ],
  ['versions', (p) => p.toJSON().versions.length],
];

/** `quoll pipeline list|create|add-step|...|infer|logs`. */
export function pipelineCommand(): Command {
  const cmd = new Command('pipeline').description('Pipelines: build, add steps, deploy, infer');
  cmd
    .command('list')
    .description('List pipelines')
    .option('--json', 'print JSON')
    .action(async (opts: OutputOptions, c: Command) =>
      printRows(opts, await (await clientFrom(c)).listPipelines(), columns),
    );
  cmd
    .command('create <name>')
    .description('Build a pipeline (returns the existing one when the name exists)')
    .option('--json', 'print JSON')
    .action(async (name: string, opts: OutputOptions, c: Command) =>
      printObject(opts, await (await clientFrom(c)).buildPipeline(name)),
    );
  cmd
    .command('get <name>')
    .description('Show a pipeline')
    .option('--json', 'print JSON')
    .action(async (name: string, opts: OutputOptions, c: Command) =>
      printObject(opts, await (await clientFrom(c)).getPipeline(name)),
    );
  cmd
    .command('add-step <pipeline> <model>')
    .description('Append a step running the newest version of <model> (or --model-version)')
    .option('--model-version <uuid>', 'model version (UUID)')
    .option('--json', 'print JSON')
    .action(
      async (name: string, model: string, opts: OutputOptions & { modelVersion?: string }, c: Command) => {
        const client = await clientFrom(c);
        const p = await client.getPipeline(name);
        printObject(opts, await p.addModelStep(await client.getModel(model, opts.modelVersion)));
      },
    );
  cmd
    .command('replace-step <pipeline> <index> <model>')
    .description('Replace step <index> (0-based) with the newest version of <model> (or --model-version)')
    .option('--model-version <uuid>', 'model version (UUID)')
    .option('--json', 'print JSON')
    .action(
      async (
        name: string,
        index: string,
        model: string,
        opts: OutputOptions & { modelVersion?: string },
        c: Command,
      ) => {
        const client = await clientFrom(c);
        const p = await client.getPipeline(name);
        printObject(
          opts,
          await p.replaceWithModelStep(Number(index), await client.getModel(model, opts.modelVersion)),
        );
      },
    );
  cmd
    .command('remove-step <pipeline> <index>')
    .description('Remove step <index> (0-based)')
    .option('--json', 'print JSON')
    .action(async (name: string, index: string, opts: OutputOptions, c: Command) =>
      printObject(opts, await (await (await clientFrom(c)).getPipeline(name)).removeStep(Number(index))),
    );
  cmd
    .command('clear <pipeline>')
    .description('Remove every step')
    .option('--json', 'print JSON')
    .action(async (name: string, opts: OutputOptions, c: Command) =>
      printObject(opts, await (await (await clientFrom(c)).getPipeline(name)).clear()),
    );
  cmd
    .command('versions <pipeline>')
    .description('List deployed versions, newest first')
    .option('--json', 'print JSON')
    .action(async (name: string, opts: OutputOptions, c: Command) =>
      printRows(opts, await (await (await clientFrom(c)).getPipeline(name)).versions(), [
        ['version', (v) => v.version],
        ['created at', (v) => v.createdAt],
        ['steps', (v) => v.steps.map((s) => s.model.name).join(', ')],
      ]),
    );
  cmd
    .command('deploy <pipeline>')
    .description('Persist the steps as a new version and deploy it')
    .option('--no-wait', 'return at once instead of waiting for Running')
    .option('--workers <n>', 'worker threads', (v) => Number(v))
    .option('--json', 'print JSON')
    .action(async (name: string, opts: OutputOptions & { wait: boolean; workers?: number }, c: Command) => {
      const p = await (await clientFrom(c)).getPipeline(name);
      await p.deploy({ waitForStatus: opts.wait, config: opts.workers ? { workers: opts.workers } : {} });
      printObject(opts, await p.status());
    });
  cmd
    .command('undeploy <pipeline>')
    .description('Stop serving the pipeline')
    .option('--json', 'print JSON')
    .action(async (name: string, opts: OutputOptions, c: Command) => {
      const p = await (await clientFrom(c)).getPipeline(name);
      await p.undeploy();
      printObject(opts, await p.status());
    });
  cmd
    .command('status <pipeline>')
    .description('Show deployment status (Running, Starting, Error, Undeployed)')
    .option('--json', 'print JSON')
    .action(async (name: string, opts: OutputOptions, c: Command) =>
      printObject(opts, await (await (await clientFrom(c)).getPipeline(name)).status()),
    );
  cmd
    .command('infer <pipeline> <file>')
    .description('Run inference on a .arrow (Arrow IPC file) or .json (records) file and print the result')
    .option('--out <file>', 'write the result to a file (.arrow or .json) instead of printing it')
    .option('--limit <n>', 'rows to print', (v) => Number(v), 20)
    .option('--json', 'print JSON records')
    .action(
      async (
        name: string,
        file: string,
        opts: OutputOptions & { out?: string; limit: number },
        c: Command,
      ) => {
        const p = await (await clientFrom(c)).getPipeline(name);
        const result = await p.inferFromFile(file);
        const records: InferenceRecord[] = Array.isArray(result) ? result : tableRecords(result);
        if (opts.out) {
          await writeFile(
            opts.out,
            Array.isArray(result) ? JSON.stringify(result) : tableToIPC(result, 'file'),
          );
          process.stdout.write(`wrote ${records.length} rows to ${opts.out}\n`);
          return;
        }
        if (opts.json) {
          process.stdout.write(JSON.stringify(records) + '\n');
          return;
        }
        const shown = records.slice(0, opts.limit);
        const keys = Object.keys(shown[0] ?? {});
        printRows(
          {},
          shown,
          keys.map((k) => [k, (r: InferenceRecord) => formatCell(k, r[k])]),
        );
        if (records.length > shown.length)
          process.stdout.write(`[${records.length} rows x ${keys.length} columns]\n`);
      },
    );
  cmd.addCommand(pipelineLogsCommand());
  return cmd;
}

function tableRecords(table: Table): InferenceRecord[] {
  return table.toArray().map((row: { toJSON(): Record<string, unknown> }) => {
    const o = row.toJSON();
    for (const [k, v] of Object.entries(o)) {
      if (v && typeof v === 'object' && 'toArray' in v)
        o[k] = Array.from((v as { toArray(): ArrayLike<number> }).toArray());
    }
    return o;
  });
}

function formatCell(key: string, v: unknown): string {
  if (key === 'time' && (typeof v === 'number' || typeof v === 'bigint'))
    return new Date(Number(v)).toISOString().replace('T', ' ').replace('Z', '');
  if (Array.isArray(v)) return `[${v.map((x) => String(x)).join(', ')}]`;
  return String(v);
}
