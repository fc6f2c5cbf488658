export { renderFields, renderTable } from './render-table.js';
export type { Cell } from './render-table.js';
export { PrintableList } from './printable-list.js';
export { inspectCustom } from './inspect-custom.js';
