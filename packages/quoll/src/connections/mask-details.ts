import { MASK } from './secret-redactor.js';

/**
 * What log serializers print in place of connection details: always `*****`, whatever the
 * value, so a details object that reaches a logger shows nothing.
 */
export function maskDetails(_details?: unknown): typeof MASK {
  return MASK;
}
