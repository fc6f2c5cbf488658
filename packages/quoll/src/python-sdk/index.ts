export { locatePythonSdk } from './python-sdk.js';
export type { PythonSdk } from './python-sdk.js';
export { normalizeProjectName, renderProjectList, renderProjectPage } from './simple-index.js';
