export { startServer } from './start-server.js';
export type { RunningServer } from './start-server.js';
export { createApp } from './create-app.js';
export type { CreateAppOptions, HealthDto, RouteRegistrar } from './create-app.js';
export { ApiError } from '../errors/index.js';
export type { RunIsolation, ServerContext } from './server-context.js';
export { HomeLock, HomeLockedError, HOME_LOCK_FILE, HOME_LOCK_INFO_FILE } from './home-lock.js';
export type { HomeLockHolder } from './home-lock.js';
