import type { Command } from 'commander';
import { Client } from '@quoll/client';

/** Global connection options of client commands. */
export interface ConnectionFlags {
  url?: string;
  token?: string;
  home?: string;
}

/** Builds a Client from `--url/--token/--home` (then env and credentials files), and selects `--workspace`. */
export async function clientFrom(cmd: Command): Promise<Client> {
  const flags = cmd.optsWithGlobals<ConnectionFlags & { workspace?: string }>();
  const env = flags.home
    ? { ...process.env, QUOLL_HOME: flags.home, QUOLL_URL: undefined, QUOLL_TOKEN: undefined }
    : process.env;
  const client = new Client({ url: flags.url, token: flags.token, env });
  if (flags.workspace) client.setCurrentWorkspace(await client.getWorkspace(flags.workspace));
  return client;
}
