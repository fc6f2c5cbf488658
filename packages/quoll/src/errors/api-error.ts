import type { ErrorCode } from '@quoll/client/wire';

/**
 * An error the API answers with: a stable catalogue code, a message that names the bad
 * value and the fix, and optional structured details. The HTTP status comes from the catalogue.
 */
export class ApiError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}
