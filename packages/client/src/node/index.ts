// The Node entry (`@quoll/client/node`, and `@quoll/client` itself under the `node` export
// condition): everything of the browser-safe root, with a Client that reads credentials files
// and the environment and works with local files.
export * from '../index.js';
export { Client } from './node-client.js';
export { nodePlatform } from './node-platform.js';
export { resolveClientOptions } from './resolve-client-options.js';
