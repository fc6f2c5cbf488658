import { Client as BaseClient } from '../client.js';
import type { ClientOptions } from '../http/index.js';
import { nodePlatform } from './node-platform.js';

/**
 * The SDK's entry point in Node: `new Client()` with no options finds its server in
 * `QUOLL_URL` + `QUOLL_TOKEN`, then `$QUOLL_HOME/credentials.json`, then
 * `./.quoll/credentials.json`; uploads and `inferFromFile` take paths; `exportLogs` writes files.
 * `import { Client } from '@quoll/client'` gives this class in Node (the `node` export condition).
 * @example
 *   import { Client } from '@quoll/client';
 *   const client = new Client(); // reads ./.quoll/credentials.json, or QUOLL_URL + QUOLL_TOKEN
 *   const ws = await client.getWorkspace('orchestrationworkspace', { createIfNotExist: true });
 *   client.setCurrentWorkspace(ws);
 */
export class Client extends BaseClient {
  constructor(options: ClientOptions = {}) {
    super(options, nodePlatform);
  }
}
