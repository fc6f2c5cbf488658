import { readFile } from 'node:fs/promises';
import { Command } from 'commander';
import type { Client, Workspace } from '@quoll/client';
import { ValidationError } from '@quoll/client/errors';
import { renderFields } from '@quoll/client/format';
import { clientFrom } from '../client-options.js';
import { printOne, printRows, type OutputOptions } from '../output.js';
import { CONNECTION_VIEW } from '../views.js';

/** A mistake on the command line, reported like the server's validation errors. */
const usage = (message: string): ValidationError => new ValidationError('invalid_request', message, 0);

/** Options of `quoll connection create`. */
interface CreateOptions extends OutputOptions {
  details?: string;
  detailsFile?: string;
}

/**
 * Reads the details object from `--details '<json>'` or `--details-file F` (`-` = stdin).
 * Error messages never quote the text: it is likely to hold a secret.
 */
async function readDetails(opts: CreateOptions): Promise<Record<string, unknown>> {
  if ((opts.details === undefined) === (opts.detailsFile === undefined)) {
    throw usage(
      'Give the details as exactly one of --details \'{"host": "…"}\' or --details-file <file.json>.',
    );
  }
  let text: string;
  let source: string;
  if (opts.details !== undefined) {
    text = opts.details;
    source = '--details';
  } else {
    const file = opts.detailsFile ?? '-';
    source = file === '-' ? 'standard input' : `the file ${file}`;
    try {
      text = file === '-' ? await readStdin() : await readFile(file, 'utf8');
    } catch (err) {
      throw usage(`Cannot read ${source}: ${(err as Error).message}`);
    }
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    // JSON.parse's own message quotes part of the text, which may be a password: not shown.
    throw usage(
      `The details in ${source} are not valid JSON: give one JSON object, e.g. {"host": "https://…"}.`,
    );
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw usage(`The details in ${source} must be a JSON object, e.g. {"host": "https://…"}.`);
  }
  return parsed as Record<string, unknown>;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** The workspace named by the positional argument, else by the global `-w/--workspace`. */
async function targetWorkspace(
  client: Client,
  positional: string | undefined,
  c: Command,
): Promise<Workspace> {
  if (positional !== undefined) return client.getWorkspace(positional);
  if (c.optsWithGlobals<{ workspace?: string }>().workspace !== undefined)
    return client.getCurrentWorkspace();
  throw usage('Name the workspace: quoll connection attach <name> <workspace> (or -w <workspace>).');
}

/** `quoll connection create|list|get|delete|attach|detach`. Details always print as `*****` except with `get --show-details`. */
export function connectionCommand(): Command {
  const cmd = new Command('connection').description(
    'Connections: named, encrypted details (URLs, credentials) attached to workspaces',
  );
  cmd
    .command('create <name> <type>')
    .description(
      'Create a connection, e.g. quoll connection create houseprice_arrow_table HTTPFILE --details \'{"host": "https://…"}\'',
    )
    .option(
      '--details <json>',
      'the details as a JSON object (visible in your shell history: prefer --details-file)',
    )
    .option('--details-file <file>', 'read the details JSON object from a file (- for standard input)')
    .option('--json', 'print JSON')
    .action(async (name: string, type: string, opts: CreateOptions, c: Command) => {
      const details = await readDetails(opts);
      printOne(opts, await (await clientFrom(c)).createConnection(name, type, details), CONNECTION_VIEW);
    });
  cmd
    .command('list')
    .description('List connections (with -w: those attached to that workspace); details print as *****')
    .option('--json', 'print JSON')
    .action(async (opts: OutputOptions, c: Command) => {
      const client = await clientFrom(c);
      const scoped = c.optsWithGlobals<{ workspace?: string }>().workspace !== undefined;
      const list = scoped
        ? await (await client.getCurrentWorkspace()).listConnections()
        : await client.listConnections();
      printRows(opts, list, CONNECTION_VIEW, '(no connections)');
    });
  cmd
    .command('get <name>')
    .description(
      'Show a connection (details as ***** unless --show-details, which is recorded in the audit trail)',
    )
    .option('--show-details', 'print the unmasked details')
    .option('--json', 'print JSON')
    .action(async (name: string, opts: OutputOptions & { showDetails?: boolean }, c: Command) => {
      const connection = await (await clientFrom(c)).getConnection(name);
      if (!opts.showDetails) {
        printOne(opts, connection, CONNECTION_VIEW);
        return;
      }
      const details = await connection.details();
      if (opts.json) {
        process.stdout.write(JSON.stringify({ ...connection.toJSON(), details }, null, 2) + '\n');
        return;
      }
      process.stdout.write(
        renderFields(
          CONNECTION_VIEW.map(([header, cell]) => [
            header,
            header === 'details' ? JSON.stringify(details) : cell(connection),
          ]),
        ) + '\n',
      );
    });
  cmd
    .command('delete <name>')
    .description('Delete a connection (it is detached from every workspace)')
    .action(async (name: string, _opts: unknown, c: Command) => {
      const connection = await (await clientFrom(c)).getConnection(name);
      await connection.deleteConnection();
      process.stdout.write(`deleted connection ${name}\n`);
    });
  cmd
    .command('attach <name> [workspace]')
    .description('Attach a connection to a workspace (the argument, else -w)')
    .action(async (name: string, workspace: string | undefined, _opts: unknown, c: Command) => {
      const client = await clientFrom(c);
      const ws = await targetWorkspace(client, workspace, c);
      await ws.addConnection(name);
      process.stdout.write(`attached connection ${name} to workspace ${ws.name}\n`);
    });
  cmd
    .command('detach <name> [workspace]')
    .description('Detach a connection from a workspace (the argument, else -w); the connection remains')
    .action(async (name: string, workspace: string | undefined, _opts: unknown, c: Command) => {
      const client = await clientFrom(c);
      const ws = await targetWorkspace(client, workspace, c);
      await ws.removeConnection(name);
      process.stdout.write(`detached connection ${name} from workspace ${ws.name}\n`);
    });
  return cmd;
}
