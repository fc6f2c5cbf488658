export { validateName } from './validate-name.js';
export { MAX_NUMERIC_ID, parseNumericId } from './parse-id.js';
export { decodeCursorTuple, encodeCursorTuple } from './opaque-cursor.js';
