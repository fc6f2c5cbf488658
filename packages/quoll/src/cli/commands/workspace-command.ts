import { Command } from 'commander';
import type { Workspace } from '@quoll/client';
import { clientFrom } from '../client-options.js';
import { printObject, printRows, type OutputOptions } from '../output.js';

const columns: [string, (w: Workspace) => string | number | boolean][] = [
  ['id', (w) => w.id],
  ['name', (w) => w.name],
  ['created at', (w) => w.createdAt],
  ['default', (w) => w.isDefault],
];

/** `quoll workspace list|create|get|current`. */
export function workspaceCommand(): Command {
  const cmd = new Command('workspace').description('Workspaces: list, create, get');
  cmd
    .command('list')
    .description('List workspaces')
    .option('--json', 'print JSON')
    .action(async (opts: OutputOptions, c: Command) =>
      printRows(opts, await (await clientFrom(c)).listWorkspaces(), columns),
    );
  cmd
    .command('create <name>')
    .description('Create a workspace')
    .option('--json', 'print JSON')
    .action(async (name: string, opts: OutputOptions, c: Command) =>
      printObject(opts, await (await clientFrom(c)).createWorkspace(name)),
    );
  cmd
    .command('get <name>')
    .description('Show a workspace')
    .option('--create', 'create it when missing')
    .option('--json', 'print JSON')
    .action(async (name: string, opts: OutputOptions & { create?: boolean }, c: Command) =>
      printObject(
        opts,
        await (await clientFrom(c)).getWorkspace(name, { createIfNotExist: opts.create === true }),
      ),
    );
  cmd
    .command('current')
    .description("Show the token's default workspace")
    .option('--json', 'print JSON')
    .action(async (opts: OutputOptions, c: Command) =>
      printObject(opts, await (await clientFrom(c)).getCurrentWorkspace()),
    );
  return cmd;
}
