import { ERROR_CODES, isErrorCode, type ErrorCode } from '../wire/index.js';

/** Base of every error the SDK throws for a server answer; `code` is from the catalogue. */
export class QuollError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    /** HTTP status of the answer (0 when the server could not be reached). */
    readonly status: number,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'QuollError';
  }
}

/** The named thing does not exist (or the token cannot see it). */
export class NotFoundError extends QuollError {
  override readonly name: string = 'NotFoundError';
}
/** Alias kept for users of the original SDK (`EntityNotFoundError`). */
export const EntityNotFoundError = NotFoundError;
/** Alias type for `EntityNotFoundError`. */
export type EntityNotFoundError = NotFoundError;

/** The name is taken, or the state forbids the change. */
export class ConflictError extends QuollError {
  override readonly name: string = 'ConflictError';
}
/** The input is invalid; the message names the bad value and the fix. */
export class ValidationError extends QuollError {
  override readonly name: string = 'ValidationError';
}
/** A missing, wrong or insufficient token. */
export class AuthError extends QuollError {
  override readonly name: string = 'AuthError';
}
/** The pipeline is not deployed or not yet Running. */
export class NotDeployedError extends QuollError {
  override readonly name: string = 'NotDeployedError';
}
/** The body is over a size cap. */
export class PayloadTooLargeError extends QuollError {
  override readonly name: string = 'PayloadTooLargeError';
}

/** Rebuilds the typed error for a code. */
export function errorFromCode(
  code: ErrorCode,
  message: string,
  status: number,
  details?: Record<string, unknown>,
): QuollError {
  const kind = ERROR_CODES[code].kind;
  switch (kind) {
    case 'not_found':
      return new NotFoundError(code, message, status, details);
    case 'conflict':
      return new ConflictError(code, message, status, details);
    case 'validation':
      return new ValidationError(code, message, status, details);
    case 'auth':
      return new AuthError(code, message, status, details);
    case 'not_deployed':
      return new NotDeployedError(code, message, status, details);
    case 'payload_too_large':
      return new PayloadTooLargeError(code, message, status, details);
    case 'internal':
      return new QuollError(code, message, status, details);
    default:
      return assertNever(kind);
  }
}

/** Rebuilds the typed error from an error response body. */
export function errorFromResponse(status: number, body: unknown): QuollError {
  const e = (body as { error?: { code?: unknown; message?: unknown; details?: unknown } } | null)?.error;
  if (e && isErrorCode(e.code)) {
    return errorFromCode(
      e.code,
      typeof e.message === 'string' ? e.message : e.code,
      status,
      e.details as Record<string, unknown> | undefined,
    );
  }
  return new QuollError('internal_error', `Unexpected HTTP ${status} answer from the server.`, status);
}

function assertNever(x: never): never {
  throw new Error(`unhandled error kind ${String(x)}`);
}
