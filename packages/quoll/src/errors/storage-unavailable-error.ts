/**
 * A store could not reach its database (connection refused, lost or timed out). Nothing is
 * known to have changed. Thrown by adapters instead of driver errors, so the layers above
 * can answer "retry shortly" (HTTP 503 `database_unavailable`) without knowing the driver.
 */
export class StorageUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StorageUnavailableError';
  }
}
