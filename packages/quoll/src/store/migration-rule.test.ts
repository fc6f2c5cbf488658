import { describe, expect, it } from 'vitest';
import { FIRST_MIGRATION_UNDER_THE_RULE, ruleViolations } from './migration-rule.js';
import { migrationsDir, readMigrations } from './schema-migrations.js';

const postgres = readMigrations(migrationsDir('postgres'));
const sqlOf = (version: number): string => postgres.find((m) => m.version === version)?.sql ?? '';

describe('the release rule of PostgreSQL migrations (each readable and writable by the release before)', () => {
  it('every migration under the rule only expands', () => {
    for (const m of postgres.filter((f) => f.version >= FIRST_MIGRATION_UNDER_THE_RULE)) {
      expect({ migration: `${m.version}_${m.name}`, violations: ruleViolations(m.sql) }).toEqual({
        migration: `${m.version}_${m.name}`,
        violations: [],
      });
    }
  });

  it('finds what made 0017 unusable by the release before it (a rolling upgrade across it is not possible)', () => {
    const found = ruleViolations(sqlOf(17)).join('\n');
    expect(found).toMatch(/renames: ALTER TABLE inference_log_batches RENAME TO/);
    expect(found).toMatch(/changes how a table stores its rows: \) PARTITION BY RANGE/);
    expect(found).toMatch(/drops: DROP TABLE inference_log_batches_0013/);
  });

  it('lets additions through: tables, nullable or defaulted columns, indexes', () => {
    expect(
      ruleViolations(
        [
          '-- a comment that says DROP TABLE is not a statement',
          'CREATE TABLE things (id INTEGER PRIMARY KEY, note TEXT);',
          'ALTER TABLE tasks ADD COLUMN priority INTEGER;',
          "ALTER TABLE tasks ADD COLUMN kind TEXT NOT NULL DEFAULT 'plain';",
          'CREATE INDEX things_by_note ON things (note);',
        ].join('\n'),
      ),
    ).toEqual([]);
  });

  it('names each statement that breaks it, by line', () => {
    expect(
      ruleViolations(
        [
          'ALTER TABLE tasks ADD COLUMN owner TEXT NOT NULL;',
          'ALTER TABLE tasks DROP COLUMN limits_json;',
          'ALTER TABLE tasks RENAME COLUMN runs_as TO run_as;',
          'ALTER TABLE tasks ALTER COLUMN name TYPE VARCHAR(40);',
          'ALTER TABLE tasks ALTER COLUMN note SET NOT NULL;',
          'DELETE FROM task_runs;',
        ].join('\n'),
      ),
    ).toEqual([
      'line 1: adds a NOT NULL column without a default: ALTER TABLE tasks ADD COLUMN owner TEXT NOT NULL;',
      'line 2: drops: ALTER TABLE tasks DROP COLUMN limits_json;',
      'line 3: renames: ALTER TABLE tasks RENAME COLUMN runs_as TO run_as;',
      "line 4: changes a column's type: ALTER TABLE tasks ALTER COLUMN name TYPE VARCHAR(40);",
      'line 5: makes a column NOT NULL: ALTER TABLE tasks ALTER COLUMN note SET NOT NULL;',
      'line 6: removes rows: DELETE FROM task_runs;',
    ]);
  });

  it('takes a statement with a reason on the line before it (widening a check)', () => {
    const widen = [
      'ALTER TABLE orchestration_packaging_logs DROP CONSTRAINT IF EXISTS orchestration_packaging_logs_source_check;',
      'ALTER TABLE orchestration_packaging_logs',
      "  ADD CONSTRAINT orchestration_packaging_logs_source_check CHECK (source IN ('quoll', 'npm', 'esbuild', 'pip'));",
    ].join('\n');
    expect(ruleViolations(widen)).toHaveLength(1);
    expect(ruleViolations(`-- expand-only: the same check, wider, follows at once\n${widen}`)).toEqual([]);
  });
});
