export { HttpTransport } from './http-transport.js';
export type { RequestOptions } from './http-transport.js';
export { resolveClientOptions } from './resolve-client-options.js';
export type { ClientOptions } from './resolve-client-options.js';
