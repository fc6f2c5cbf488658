export { startServer, ApiError } from './server/index.js';
export type { RunningServer, ServerContext } from './server/index.js';
export { resolveServerConfig, DEFAULT_PORT } from './config/index.js';
export type { ServerConfig, ServerConfigInput } from './config/index.js';
