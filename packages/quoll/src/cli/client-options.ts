import { InvalidArgumentError, type Command } from 'commander';
import type { Client } from '@quoll/client';

/** Global connection options of client commands. */
export interface ConnectionFlags {
  url?: string;
  token?: string;
  home?: string;
}

/**
 * Builds a Client from `--url/--token/--home` (then env and credentials files), and selects
 * `--workspace` (unless `select` is false: listings pass the name as a filter instead).
 */
export async function clientFrom(cmd: Command, options: { select?: boolean } = {}): Promise<Client> {
  const flags = cmd.optsWithGlobals<ConnectionFlags & { workspace?: string }>();
  const env = flags.home
    ? { ...process.env, QUOLL_HOME: flags.home, QUOLL_URL: undefined, QUOLL_TOKEN: undefined }
    : process.env;
  // Loaded here, not at start: the SDK's root loads apache-arrow (~150 modules), which `--help`,
  // `completion` and the server command never need.
  const { Client } = await import('@quoll/client');
  const client = new Client({ url: flags.url, token: flags.token, env });
  if (flags.workspace && options.select !== false) {
    client.setCurrentWorkspace(await client.getWorkspace(flags.workspace));
  }
  return client;
}

/** `-w NAME` / `--workspace-id ID` of a listing: which workspaces it covers. */
export interface ListScope {
  workspaceId?: number;
  workspaceName?: string;
}

/**
 * The scope every `list` command uses: all the workspaces the token can see, or the one
 * `-w NAME` or `--workspace-id ID` names.
 */
export function listScope(cmd: Command): ListScope {
  const flags = cmd.optsWithGlobals<{ workspace?: string; workspaceId?: number }>();
  return {
    ...(flags.workspaceId !== undefined ? { workspaceId: flags.workspaceId } : {}),
    ...(flags.workspace !== undefined ? { workspaceName: flags.workspace } : {}),
  };
}

/** The `--workspace-id <id>` option of list commands. */
export function parseWorkspaceId(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1)
    throw new InvalidArgumentError('give a workspace id (a positive integer).');
  return n;
}
