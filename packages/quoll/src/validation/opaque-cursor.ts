/**
 * The wrapping every paging cursor shares: a JSON tuple (its first element the cursor's version)
 * as an opaque URL-safe string. What the tuple holds, and what a malformed one answers, is the
 * cursor's own (`logs/log-cursor.ts`, `scheduler/run-cursor.ts`).
 */
export function encodeCursorTuple(tuple: readonly unknown[]): string {
  return Buffer.from(JSON.stringify(tuple)).toString('base64url');
}

/** The JSON value a cursor string holds, or null when it is not base64url JSON at all. */
export function decodeCursorTuple(text: string): unknown {
  try {
    return JSON.parse(Buffer.from(text, 'base64url').toString('utf8')) as unknown;
  } catch {
    return null;
  }
}
