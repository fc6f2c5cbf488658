export {
  AuthError,
  ConflictError,
  EntityNotFoundError,
  NotDeployedError,
  NotFoundError,
  PayloadTooLargeError,
  QuollError,
  ValidationError,
  errorFromCode,
  errorFromResponse,
} from './quoll-error.js';
