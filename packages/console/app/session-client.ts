import type { Workspace } from '@quoll/client';
import { Client } from '@quoll/client';
import { apiHeaders, type ConsoleSession } from './session.js';

/** The SDK client of the session: the page's origin, the session cookie, the CSRF header. */
export function sessionClient(session: ConsoleSession): Client {
  return new Client({ headers: apiHeaders(session) });
}

/** A client acting in one workspace (the SDK's calls that take no workspace use it). */
export function clientIn(session: ConsoleSession, workspace: Workspace): Client {
  const client = sessionClient(session);
  client.setCurrentWorkspace(workspace);
  return client;
}
