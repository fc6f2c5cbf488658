import { Command } from 'commander';
import { clientFrom, listScope, parseWorkspaceId } from '../client-options.js';
import { printOne, printRows, type OutputOptions } from '../output.js';
import { formatBytes, Progress } from '../progress.js';
import { MODEL_VIEW } from '../views.js';

/** `quoll model upload|list|get|configure`. */
export function modelCommand(): Command {
  const cmd = new Command('model').description('Models: upload ONNX files, list versions, configure');
  cmd
    .command('upload <name> <file>')
    .description(
      'Upload an ONNX model into the workspace (-w, else the default); the same name again = new version',
    )
    .option('--tensor-fields <cols>', 'comma-separated input column names, one per model input')
    .option('--json', 'print JSON')
    .action(
      async (name: string, file: string, opts: OutputOptions & { tensorFields?: string }, c: Command) => {
        const progress = Progress.start(`uploading ${file}`, opts);
        // The config travels with the upload, so a bad --tensor-fields stores nothing.
        const model = await (
          await clientFrom(c)
        )
          .uploadModel(name, file, {
            ...(opts.tensorFields ? { tensorFields: opts.tensorFields.split(',').map((s) => s.trim()) } : {}),
            onProgress: (sent, total) =>
              progress.update(
                total === null || sent < total
                  ? `${formatBytes(sent)}${total === null ? '' : ` of ${formatBytes(total)}`}`
                  : `${formatBytes(sent)} sent, reading the model`,
              ),
          })
          .finally(() => progress.clear());
        progress.done(`version ${model.version}`);
        printOne(opts, model, MODEL_VIEW);
      },
    );
  cmd
    .command('list')
    .description(
      'List model versions, newest first, of every workspace the token can see (-w or --workspace-id: one)',
    )
    .option('--workspace-id <id>', 'only this workspace', parseWorkspaceId)
    .option('--json', 'print JSON')
    .action(async (opts: OutputOptions, c: Command) => {
      const scope = listScope(c);
      const models = await (
        await clientFrom(c, { select: false })
      ).listModels(Object.keys(scope).length > 0 ? scope : { allWorkspaces: true });
      printRows(opts, models, MODEL_VIEW, '(no models)');
    });
  cmd
    .command('get <name>')
    .description('Show the newest version of a model (or --model-version)')
    .option('--model-version <uuid>', 'a specific version (UUID)')
    .option('--json', 'print JSON')
    .action(async (name: string, opts: OutputOptions & { modelVersion?: string }, c: Command) =>
      printOne(opts, await (await clientFrom(c)).getModel(name, opts.modelVersion), MODEL_VIEW),
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
        printOne(opts, model, MODEL_VIEW);
      },
    );
  return cmd;
}
