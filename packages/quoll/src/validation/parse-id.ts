import { ApiError } from '../errors/index.js';

/** The largest numeric id (workspace ids are 32-bit signed integers in both stores). */
export const MAX_NUMERIC_ID = 2_147_483_647;

/** Canonical decimal: no sign, space, leading zero, exponent, fraction or radix prefix. */
const CANONICAL_ID = /^[1-9][0-9]{0,9}$/;

/**
 * Reads a numeric id as a URL names it (a path parameter such as `:workspaceId`, or a query
 * parameter): only the canonical decimal form of an integer from 1 to {@link MAX_NUMERIC_ID}
 * is an id. `0x2`, `1e3`, `+2`, ` 2`, `02`, `2.0`, `0`, `-1` or a number past the range are
 * refused with `invalid_request` (400) instead of being read as another id (`Number()` reads
 * `0x2` as 2). `what` names the id in the message (`Workspace id`).
 *
 * @example
 * parseNumericId('12', 'Workspace id'); // 12
 * parseNumericId('0x2', 'Workspace id'); // throws ApiError invalid_request
 */
export function parseNumericId(raw: unknown, what: string): number {
  const text = typeof raw === 'number' ? String(raw) : raw;
  if (typeof text === 'string' && CANONICAL_ID.test(text)) {
    const id = Number(text);
    if (id <= MAX_NUMERIC_ID) return id;
  }
  const shown =
    typeof raw === 'string' ? JSON.stringify(raw.length > 40 ? `${raw.slice(0, 40)}…` : raw) : String(raw);
  throw new ApiError(
    'invalid_request',
    `${what} ${shown} is not an id: ids are decimal integers from 1 to ${MAX_NUMERIC_ID}, without sign, spaces or leading zeros.`,
    { id: typeof raw === 'string' ? raw.slice(0, 40) : String(raw) },
  );
}
