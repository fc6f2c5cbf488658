export { validateName } from './validate-name.js';
