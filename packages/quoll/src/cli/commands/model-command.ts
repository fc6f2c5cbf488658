import { Command } from 'commander';
import type { ModelVersion } from '@quoll/client';
import { clientFrom } from '../client-options.js';
import { printObject, printRows, type OutputOptions } from '../output.js';

const columns: [string, (m: ModelVersion) => string | number][] = [
  ['name', (m) => m.name],
  ['version', (m) => m.version],
  ['file name', (m) => m.fileName],
  ['sha', (m) => `${m.sha.slice(0, 12)}…`],
  ['inputs', (m) => m.inputs.map((i) => i.name).join(', ')],
  ['outputs', (m) => m.outputs.map((o) => o.name).join(', ')],
  ['created at', (m) => m.createdAt],
];

/** `quoll model upload|list|get|configure`. */
export function modelCommand(): Command {
  const cmd = new Command('model').description('Models: upload ONNX files, list versions, configure');
  cmd
    .command('upload <name> <file>')
    .description('Upload an ONNX model (same name again = new version)')
    .option('--tensor-fields <cols>', 'comma-separated input column names, one per model input')
    .option('--json', 'print JSON')
    .action(
      async (name: string, file: string, opts: OutputOptions & { tensorFields?: string }, c: Command) => {
        // The config travels with the upload, so a bad --tensor-fields stores nothing.
        const model = await (
          await clientFrom(c)
        ).uploadModel(name, file, {
          ...(opts.tensorFields ? { tensorFields: opts.tensorFields.split(',').map((s) => s.trim()) } : {}),
        });
        printObject(opts, model);
      },
    );
  cmd
    .command('list')
    .description('List model versions, newest first')
    .option('--json', 'print JSON')
    .action(async (opts: OutputOptions, c: Command) =>
      printRows(opts, await (await clientFrom(c)).listModels(), columns),
    );
  cmd
    .command('get <name>')
    .description('Show the newest version of a model (or --model-version)')
    .option('--model-version <uuid>', 'a specific version (UUID)')
    .option('--json', 'print JSON')
    .action(async (name: string, opts: OutputOptions & { modelVersion?: string }, c: Command) =>
      printObject(opts, await (await clientFrom(c)).getModel(name, opts.modelVersion)),
    );
  cmd
    .command('configure <name>')
    .description('Configure the newest version of a model (or --model-version)')
    .option('--model-version <uuid>', 'a specific version (UUID)')
    .option('--tensor-fields <cols>', 'comma-separated input column names, one per model input')
    .option('--batch <mode>', '"single" to run one row at a time')
    .option('--json', 'print JSON')
    .action(
      async (
        name: string,
        opts: OutputOptions & { modelVersion?: string; tensorFields?: string; batch?: string },
        c: Command,
      ) => {
        const model = await (await clientFrom(c)).getModel(name, opts.modelVersion);
        await model.configure({
          ...(opts.tensorFields ? { tensorFields: opts.tensorFields.split(',').map((s) => s.trim()) } : {}),
          ...(opts.batch ? { batchConfig: opts.batch as 'single' } : {}),
        });
        printObject(opts, model);
      },
    );
  return cmd;
}
