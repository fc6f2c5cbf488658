import { describe, expect, it } from 'vitest';
import { ruleViolations } from './migration-rule.js';

// Review (review-upgrade): ordinary PostgreSQL spellings of what the release rule forbids
// (packages/quoll/migrations/README.md) must be flagged, or the test that "checks each
// PostgreSQL migration from 0018 on for the statements above" passes a breaking migration.
describe('review: the release-rule check flags ordinary spellings of forbidden statements', () => {
  const flagged = (sql: string): boolean => ruleViolations(sql).length > 0;

  it('DROP of a column without the optional COLUMN keyword', () => {
    expect(flagged('ALTER TABLE tasks DROP limits_json;')).toBe(true);
  });

  it('ADD of a NOT NULL column without the optional COLUMN keyword (no default)', () => {
    expect(flagged('ALTER TABLE tasks ADD owner TEXT NOT NULL;')).toBe(true);
  });

  it('a retype without the optional COLUMN keyword', () => {
    expect(flagged('ALTER TABLE tasks ALTER name TYPE VARCHAR(40);')).toBe(true);
  });

  it('an ADD COLUMN … NOT NULL (no default) written over two lines, as the migrations wrap long statements', () => {
    expect(flagged('ALTER TABLE tasks\n  ADD COLUMN owner TEXT\n    NOT NULL;')).toBe(true);
  });

  it('a retype written over two lines', () => {
    expect(flagged('ALTER TABLE tasks ALTER COLUMN name\n  TYPE VARCHAR(40);')).toBe(true);
  });

  it("dropping the default of a NOT NULL column the previous release's INSERTs leave out (0009's limits_json)", () => {
    expect(flagged('ALTER TABLE tasks ALTER COLUMN limits_json DROP DEFAULT;')).toBe(true);
  });

  it('a NOT NULL column whose "default" is NULL', () => {
    expect(flagged('ALTER TABLE tasks ADD COLUMN owner TEXT NOT NULL DEFAULT NULL;')).toBe(true);
  });

  it('DROP SEQUENCE / DROP MATERIALIZED VIEW', () => {
    expect(flagged('DROP SEQUENCE task_runs_id_seq CASCADE;')).toBe(true);
    expect(flagged('DROP MATERIALIZED VIEW pipeline_stats;')).toBe(true);
  });

  it('one waiver line exempts only one statement, not every statement on the next line', () => {
    expect(
      ruleViolations(
        '-- expand-only: a wider check follows\nALTER TABLE a DROP COLUMN x; ALTER TABLE b DROP COLUMN y;',
      ),
    ).not.toEqual([]);
  });

  it("narrowing writes the README names ('wider checks' only; a unique index the previous release's writes cannot break)", () => {
    expect(flagged("ALTER TABLE tasks ADD CONSTRAINT tasks_kind CHECK (kind IN ('a'));")).toBe(true);
    expect(flagged('CREATE UNIQUE INDEX tasks_by_name ON tasks (name);')).toBe(true);
  });
});
