/** Defaults of inference-log queries, the same on both sides of the API. */
export const LOG_DEFAULTS = {
  /** Rows a query without a time range returns when no limit is given (the original's default). */
  limit: 100,
  /** Size cap of one page, in bytes of Arrow data (the original's 10 MB). */
  pageBytes: 10_000_000,
} as const;
