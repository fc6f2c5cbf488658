export { ApiError } from './api-error.js';
export { fromErrorOutcome, isErrorOutcome, toErrorOutcome } from './error-outcome.js';
export type { ErrorOutcome } from './error-outcome.js';
export { StorageUnavailableError } from './storage-unavailable-error.js';
export { MAX_MESSAGE_CHARS, safeDetails, safeMessage } from './safe-message.js';
