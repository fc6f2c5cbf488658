import { writeFile } from 'node:fs/promises';
import { Command } from 'commander';
import type { Table } from 'apache-arrow';
import type { InferenceRecord } from '@quoll/client';
import type { DeploymentConfigDto } from '@quoll/client/wire';
import { clientFrom, listScope, parseWorkspaceId } from '../client-options.js';
import { formatTime } from '../format-time.js';
import { printOne, printRows, type OutputOptions } from '../output.js';
import { Progress } from '../progress.js';
import { PIPELINE_STATUS_VIEW, PIPELINE_VERSION_VIEW, PIPELINE_VIEW } from '../views.js';
import { pipelineLogsCommand } from './pipeline-logs-command.js';

/** The deployment flags of `quoll pipeline deploy`. */
interface DeployFlags {
  replicas?: number;
  workers?: number;
  cpus?: number;
  memory?: string;
}

/** `quoll pipeline list|create|add-step|...|infer|logs`. */
export function pipelineCommand(): Command {
  const cmd = new Command('pipeline').description('Pipelines: build, add steps, deploy, infer');
  cmd
    .command('list')
    .description('List pipelines of every workspace the token can see (-w or --workspace-id: one)')
    .option('--workspace-id <id>', 'only this workspace', parseWorkspaceId)
    .option('--json', 'print JSON')
    .action(async (opts: OutputOptions, c: Command) => {
      const scope = listScope(c);
      const pipelines = await (
        await clientFrom(c, { select: false })
      ).listPipelines(Object.keys(scope).length > 0 ? scope : { allWorkspaces: true });
      printRows(opts, pipelines, PIPELINE_VIEW, '(no pipelines)');
    });
  cmd
    .command('create <name>')
    .description('Build a pipeline (returns the existing one when the name exists)')
    .option('--json', 'print JSON')
    .action(async (name: string, opts: OutputOptions, c: Command) =>
      printOne(opts, await (await clientFrom(c)).buildPipeline(name), PIPELINE_VIEW),
    );
  cmd
    .command('get <name>')
    .description('Show a pipeline')
    .option('--json', 'print JSON')
    .action(async (name: string, opts: OutputOptions, c: Command) =>
      printOne(opts, await (await clientFrom(c)).getPipeline(name), PIPELINE_VIEW),
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
        printOne(opts, await p.addModelStep(await client.getModel(model, opts.modelVersion)), PIPELINE_VIEW);
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
        printOne(
          opts,
          await p.replaceWithModelStep(Number(index), await client.getModel(model, opts.modelVersion)),
          PIPELINE_VIEW,
        );
      },
    );
  cmd
    .command('remove-step <pipeline> <index>')
    .description('Remove step <index> (0-based)')
    .option('--json', 'print JSON')
    .action(async (name: string, index: string, opts: OutputOptions, c: Command) =>
      printOne(
        opts,
        await (await (await clientFrom(c)).getPipeline(name)).removeStep(Number(index)),
        PIPELINE_VIEW,
      ),
    );
  cmd
    .command('clear <pipeline>')
    .description('Remove every step')
    .option('--json', 'print JSON')
    .action(async (name: string, opts: OutputOptions, c: Command) =>
      printOne(opts, await (await (await clientFrom(c)).getPipeline(name)).clear(), PIPELINE_VIEW),
    );
  cmd
    .command('versions <pipeline>')
    .description('List deployed versions, newest first')
    .option('--json', 'print JSON')
    .action(async (name: string, opts: OutputOptions, c: Command) =>
      printRows(
        opts,
        await (await (await clientFrom(c)).getPipeline(name)).versions(),
        PIPELINE_VERSION_VIEW,
      ),
    );
  cmd
    .command('deploy <pipeline>')
    .description('Persist the steps as a version (unchanged steps reuse the newest) and deploy it')
    .option('--no-wait', 'return at once instead of waiting for Running')
    .option('--workers <n>', "worker threads, each on its own core (default: the server's --workers)", (v) =>
      Number(v),
    )
    .option('--cpus <n>', 'cores the pipeline may use; without --workers, ceil(n) workers (0.5 → 1)', (v) =>
      Number(v),
    )
    .option('--memory <size>', 'memory the models may take, e.g. 512Mi, 1Gi (refused when too small)')
    .option(
      '--replicas <n>',
      'nodes serving the pipeline on a cluster (default: every inference node); 1 on an embedded server',
      (v) => Number(v),
    )
    .option('--json', 'print JSON')
    .action(async (name: string, opts: OutputOptions & DeployFlags & { wait: boolean }, c: Command) => {
      const p = await (await clientFrom(c)).getPipeline(name);
      const config: DeploymentConfigDto = {
        ...(opts.replicas !== undefined ? { replicas: opts.replicas } : {}),
        ...(opts.workers !== undefined ? { workers: opts.workers } : {}),
        ...(opts.cpus !== undefined ? { cpus: opts.cpus } : {}),
        ...(opts.memory !== undefined ? { memory: opts.memory } : {}),
      };
      const progress = Progress.start(`deploying ${name}`, opts);
      if (!progress.visible || !opts.wait) {
        await p.deploy({ waitForStatus: opts.wait, config });
        printOne(opts, await p.status(), PIPELINE_STATUS_VIEW);
        return;
      }
      // On a terminal: the status while the deploy settles.
      await showWhile(
        p.deploy({ waitForStatus: true, config }),
        async () => {
          const s = await p.status();
          return `${s.status}${s.details.length > 0 ? ` (${s.details.at(-1) ?? ''})` : ''}`;
        },
        progress,
      );
      printOne(opts, await p.status(), PIPELINE_STATUS_VIEW);
    });
  cmd
    .command('undeploy <pipeline>')
    .description('Stop serving the pipeline')
    .option('--json', 'print JSON')
    .action(async (name: string, opts: OutputOptions, c: Command) => {
      const p = await (await clientFrom(c)).getPipeline(name);
      await p.undeploy();
      printOne(opts, await p.status(), PIPELINE_STATUS_VIEW);
    });
  cmd
    .command('status <pipeline>')
    .description('Show deployment status (Running, Starting, Error, Undeployed)')
    .option('--json', 'print JSON')
    .action(async (name: string, opts: OutputOptions, c: Command) =>
      printOne(opts, await (await (await clientFrom(c)).getPipeline(name)).status(), PIPELINE_STATUS_VIEW),
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
          // apache-arrow is already loaded by the client here; a static import would load it for every command.
          const { tableToIPC } = await import('apache-arrow');
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

/**
 * Awaits `work` while a progress line shows what `describe` reads every quarter second; the
 * line ends with `done` or is cleared when the work fails (its error is reported as usual).
 */
export async function showWhile<T>(
  work: Promise<T>,
  describe: () => Promise<string>,
  progress: Progress,
): Promise<T> {
  let settled = false;
  const poll = (async () => {
    while (!settled) {
      const text = await describe().catch(() => null);
      if (!settled && text !== null) progress.update(text);
      await new Promise((r) => setTimeout(r, 250));
    }
  })();
  try {
    const value = await work;
    progress.done('done');
    return value;
  } catch (err) {
    progress.clear();
    throw err;
  } finally {
    settled = true;
    await poll;
  }
}

function formatCell(key: string, v: unknown): string {
  if (key === 'time' && (typeof v === 'number' || typeof v === 'bigint')) return formatTime(Number(v));
  if (Array.isArray(v)) return `[${v.map((x) => String(x)).join(', ')}]`;
  return String(v);
}
