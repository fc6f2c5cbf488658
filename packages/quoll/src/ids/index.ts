export { createTimeOrderedIdGenerator, timeOrderedId } from './time-ordered-id.js';
export type { IdGenerator } from './time-ordered-id.js';
