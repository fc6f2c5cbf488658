export { adoptTable, isArrowTableLike, isInstanceOfCopy, isSdkTable } from './adopt-table.js';
export type { ArrowTableLike } from './adopt-table.js';
export { checkArrowModule } from './arrow-module.js';
export type { ArrowModule, ArrowTableOf } from './arrow-module.js';
export { SDK_ARROW_RANGE } from './sdk-arrow.js';
