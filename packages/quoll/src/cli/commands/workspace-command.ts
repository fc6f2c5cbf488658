import { Command } from 'commander';
import { clientFrom } from '../client-options.js';
import { printOne, printRows, type OutputOptions } from '../output.js';
import { WORKSPACE_VIEW } from '../views.js';

/** `quoll workspace list|create|get|current`. */
export function workspaceCommand(): Command {
  const cmd = new Command('workspace').description('Workspaces: list, create, get');
  cmd
    .command('list')
    .description('List the workspaces the token can see')
    .option('--json', 'print JSON')
    .action(async (opts: OutputOptions, c: Command) =>
      printRows(opts, await (await clientFrom(c)).listWorkspaces(), WORKSPACE_VIEW),
    );
  cmd
    .command('create <name>')
    .description('Create a workspace')
    .option('--json', 'print JSON')
    .action(async (name: string, opts: OutputOptions, c: Command) =>
      printOne(opts, await (await clientFrom(c)).createWorkspace(name), WORKSPACE_VIEW),
    );
  cmd
    .command('get <name>')
    .description('Show a workspace')
    .option('--create', 'create it when missing')
    .option('--json', 'print JSON')
    .action(async (name: string, opts: OutputOptions & { create?: boolean }, c: Command) =>
      printOne(
        opts,
        await (await clientFrom(c)).getWorkspace(name, { createIfNotExist: opts.create === true }),
        WORKSPACE_VIEW,
      ),
    );
  cmd
    .command('current')
    .description("Show the workspace commands act in (-w, else the token's default workspace)")
    .option('--json', 'print JSON')
    .action(async (opts: OutputOptions, c: Command) =>
      printOne(opts, await (await clientFrom(c)).getCurrentWorkspace(), WORKSPACE_VIEW),
    );
  return cmd;
}
