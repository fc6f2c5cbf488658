export { ModelService } from './model-service.js';
export type { ModelConfigPatch, ModelInspector } from './model-service.js';
export type { ModelStore, NewModelVersion } from './model-store.js';
