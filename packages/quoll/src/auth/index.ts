export { TokenService, hashToken, DEFAULT_TOKEN_CACHE_TTL_MS } from './token-service.js';
export type { IssuedToken, TokenInfo } from './token-service.js';
export { ensureCredentials } from './ensure-credentials.js';
export type { Credentials } from './ensure-credentials.js';
export type { Principal } from './principal.js';
export type { TokenRecord, TokenStore } from './token-store.js';
export {
  SessionService,
  isSignInLink,
  CSRF_HEADER,
  DEFAULT_SESSION_TTL_MS,
  DEFAULT_SIGN_IN_TTL_MS,
  SESSION_COOKIE,
  SESSION_SUBJECT_PREFIX,
  RESERVED_SUBJECT_PREFIXES,
  SIGN_IN_SUBJECT_PREFIX,
  TASK_RUN_SUBJECT_PREFIX,
} from './session-service.js';
export type { SessionInfo, SessionServiceOptions, SignInLink, StartedSession } from './session-service.js';
