export { ModelVersion } from './model-version.js';
export type { ConfigureOptions } from './model-version.js';
