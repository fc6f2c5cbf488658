export { TokenService, hashToken, DEFAULT_TOKEN_CACHE_TTL_MS } from './token-service.js';
export type { IssuedToken } from './token-service.js';
export { ensureCredentials } from './ensure-credentials.js';
export type { Credentials } from './ensure-credentials.js';
