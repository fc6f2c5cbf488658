/**
 * The apache-arrow the SDK depends on, as its package.json says (a test keeps them equal), for
 * error messages about Tables of another copy or version.
 */
export const SDK_ARROW_RANGE = '^21.2.0';
