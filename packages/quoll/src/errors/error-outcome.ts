import { ERROR_CODES, type ErrorCode } from '@quoll/client/wire';
import { ApiError } from './api-error.js';

/**
 * A catalogue error as plain data: what crosses a worker thread (structured clone) or, later,
 * a node boundary, and is rebuilt into an {@link ApiError} on the other side with its code.
 */
export interface ErrorOutcome {
  code: ErrorCode;
  message: string;
  details?: Record<string, unknown>;
}

/** An {@link ApiError} as data; anything else becomes `internal_error` (its text is not carried). */
export function toErrorOutcome(err: unknown): ErrorOutcome {
  if (err instanceof ApiError) {
    return err.details === undefined
      ? { code: err.code, message: err.message }
      : { code: err.code, message: err.message, details: err.details };
  }
  return { code: 'internal_error', message: 'Internal server error; the server log has the details.' };
}

/** Rebuilds the {@link ApiError} an {@link ErrorOutcome} describes; an unknown code becomes `internal_error`. */
export function fromErrorOutcome(outcome: ErrorOutcome): ApiError {
  const code: ErrorCode = Object.hasOwn(ERROR_CODES, outcome.code) ? outcome.code : 'internal_error';
  return new ApiError(code, outcome.message, outcome.details);
}

/** True when a value has the shape of an {@link ErrorOutcome} (checked before trusting a message). */
export function isErrorOutcome(value: unknown): value is ErrorOutcome {
  if (value === null || typeof value !== 'object') return false;
  const v = value as Record<string, unknown>;
  return typeof v['code'] === 'string' && typeof v['message'] === 'string';
}
