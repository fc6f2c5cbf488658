export { startServer } from './start-server.js';
export type { RunningServer } from './start-server.js';
export { createApp } from './create-app.js';
export type { CreateAppOptions, HealthDto, RouteRegistrar } from './create-app.js';
export { ApiError } from './api-error.js';
export type { ServerContext } from './server-context.js';
