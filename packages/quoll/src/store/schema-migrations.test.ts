import { describe, expect, it } from 'vitest';
import { SchemaTooNewError } from './schema-migrations.js';

// Since the schema watch, nodes of the previous release keep serving (and writing) on a schema a
// newer node migrated (schema_ahead). The refusal at start must not tell the operator the opposite.
describe('SchemaTooNewError agrees with schema_ahead', () => {
  it('does not claim that an older node never writes to a newer schema', () => {
    const message = new SchemaTooNewError(19, 18, 'postgres://db').message;
    expect(message).not.toMatch(/never writes to a newer schema/);
  });
});
