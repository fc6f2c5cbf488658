export { resolveServerConfig, DEFAULT_PORT } from './server-config.js';
export type { ServerConfig, ServerConfigInput } from './server-config.js';
