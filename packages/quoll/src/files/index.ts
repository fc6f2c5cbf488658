// Ground floor: small filesystem facts every domain that keeps files asks for.
export { pathExists } from './path-exists.js';
