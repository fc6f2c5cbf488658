import { describe, expect, it } from 'vitest';
import {
  FIRST_MIGRATION_UNDER_THE_RULE,
  migrationsBreakingTheRule,
  ruleViolations,
} from './migration-rule.js';
import { migrationsDir, readMigrations } from './schema-migrations.js';

const postgres = readMigrations(migrationsDir('postgres'));
const sqlOf = (version: number): string => postgres.find((m) => m.version === version)?.sql ?? '';
const newest = Math.max(...postgres.map((m) => m.version));

describe('the release rule of PostgreSQL migrations (each readable and writable by the release before)', () => {
  it('every migration under the rule only expands', () => {
    expect(migrationsBreakingTheRule(postgres)).toEqual([]);
  });

  it('that check is not empty-handed while no migration is under the rule: a next migration that drops is caught', () => {
    // Until 0018 exists the check above reads no file; this is what it does once one does.
    const next = { version: Math.max(newest + 1, FIRST_MIGRATION_UNDER_THE_RULE), name: 'next_release' };
    const withNext = [
      ...postgres,
      {
        ...next,
        sql: '-- a new column, then a drop the previous release still reads\nALTER TABLE tasks ADD note TEXT;\nALTER TABLE tasks\n  DROP limits_json;\n',
      },
    ];
    expect(migrationsBreakingTheRule(withNext)).toEqual([
      {
        migration: `${String(next.version).padStart(4, '0')}_next_release`,
        violations: ['line 3: drops: ALTER TABLE tasks DROP limits_json'],
      },
    ]);
  });

  it('bites on the migrations written before it: what each one since 0006 would have needed a reason for', () => {
    const flagged = migrationsBreakingTheRule(postgres, 1).map((m) => m.migration.slice(0, 4));
    // 0006 unique indexes and a dropped index, 0010 a check dropped and added again, 0011 a
    // backfill and 0015 a revocation (UPDATEs), 0017 renames, drops, partitions. Not 0008: its
    // NOT NULL column has a default, and its CHECK binds new rows through that default only.
    expect(flagged).toEqual(['0006', '0010', '0011', '0015', '0017']);
  });

  it('finds what made 0017 unusable by the release before it (a rolling upgrade across it is not possible)', () => {
    const found = ruleViolations(sqlOf(17)).join('\n');
    expect(found).toMatch(
      /line 29: renames: ALTER TABLE inference_log_batches RENAME TO inference_log_batches_0013\n/,
    );
    expect(found).toMatch(
      /line 35: changes how a table stores its rows: CREATE TABLE inference_log_batches \(/,
    );
    expect(found).toMatch(/line 85: drops: DROP TABLE inference_log_batches_0013$/);
    // Inside its DO block: the statements of the body, by their own lines.
    expect(found).toMatch(/line 79: rewrites rows: UPDATE inference_log_heads SET first_seq/);
    expect(found).toMatch(/line 75: runs SQL built at run time \(EXECUTE\)/);
  });

  it('lets additions through: tables, nullable or defaulted columns, plain indexes, comments and strings that name forbidden words', () => {
    expect(
      ruleViolations(
        [
          '-- a comment that says DROP TABLE is not a statement',
          '/* nor is this one: ALTER TABLE tasks DROP limits_json; */',
          "CREATE TABLE things (id INTEGER PRIMARY KEY, note TEXT NOT NULL, kind TEXT UNIQUE CHECK (kind <> ''));",
          'ALTER TABLE tasks ADD COLUMN priority INTEGER;',
          "ALTER TABLE tasks ADD COLUMN kind TEXT NOT NULL DEFAULT 'plain' CHECK (kind IN ('plain', 'drop'));",
          'ALTER TABLE tasks ADD serial_no BIGINT NOT NULL GENERATED ALWAYS AS IDENTITY, ADD COLUMN IF NOT EXISTS tag TEXT;',
          "INSERT INTO things (id, note) VALUES (1, 'DROP TABLE x; RENAME');",
          "ALTER TABLE tasks ALTER COLUMN note SET DEFAULT '';",
          'CREATE INDEX things_by_note ON things (note);',
          "CREATE FUNCTION things_touch() RETURNS trigger LANGUAGE plpgsql AS $fn$ BEGIN NEW.note := 'x;'; RETURN NEW; END $fn$;",
          'CREATE TRIGGER things_touch BEFORE UPDATE ON things FOR EACH ROW EXECUTE FUNCTION things_touch();',
        ].join('\n'),
      ),
    ).toEqual([]);
  });

  it('names each statement that breaks it, by the line it starts on', () => {
    expect(
      ruleViolations(
        [
          'ALTER TABLE tasks ADD COLUMN owner TEXT NOT NULL;',
          'ALTER TABLE tasks DROP COLUMN limits_json;',
          'ALTER TABLE tasks RENAME COLUMN runs_as TO run_as;',
          'ALTER TABLE tasks ALTER COLUMN name TYPE VARCHAR(40);',
          'ALTER TABLE tasks ALTER COLUMN note SET NOT NULL;',
          'DELETE FROM task_runs;',
          'ALTER TABLE tasks',
          '  ADD COLUMN a INT NOT NULL DEFAULT 0,',
          '  ADD b INT NOT NULL; TRUNCATE tasks;',
        ].join('\n'),
      ),
    ).toEqual([
      'line 1: adds a NOT NULL column without a default: ALTER TABLE tasks ADD COLUMN owner TEXT NOT NULL',
      'line 2: drops: ALTER TABLE tasks DROP COLUMN limits_json',
      'line 3: renames: ALTER TABLE tasks RENAME COLUMN runs_as TO run_as',
      "line 4: changes a column's type: ALTER TABLE tasks ALTER COLUMN name TYPE VARCHAR(40)",
      'line 5: makes a column NOT NULL: ALTER TABLE tasks ALTER COLUMN note SET NOT NULL',
      'line 6: removes rows: DELETE FROM task_runs',
      'line 7: adds a NOT NULL column without a default: ALTER TABLE tasks ADD COLUMN a INT NOT NULL DEFAULT 0, ADD b INT NOT NULL',
      'line 9: removes rows: TRUNCATE tasks',
    ]);
  });

  it('reads the spellings PostgreSQL allows: COLUMN left out, a statement over several lines, ALTER … SET DATA TYPE, DROP of anything', () => {
    const whys = (sql: string): string[] => ruleViolations(sql).map((v) => v.split(': ')[1] ?? '');
    expect(
      whys('ALTER TABLE ONLY tasks\n  ALTER limits_json\n  SET DATA TYPE JSONB USING limits_json::jsonb;'),
    ).toEqual(["changes a column's type"]);
    expect(whys('ALTER TABLE tasks ALTER note DROP NOT NULL;')).toEqual(['drops']);
    expect(whys('ALTER TABLE tasks ALTER COLUMN limits_json DROP DEFAULT;')).toEqual([
      "drops a default the previous release's INSERTs may rely on",
    ]);
    expect(whys('DROP TRIGGER t ON tasks; DROP EXTENSION pgcrypto; DROP POLICY p ON tasks;')).toEqual([
      'drops',
      'drops',
      'drops',
    ]);
    expect(whys('ALTER TABLE tasks SET SCHEMA archive;')).toEqual(['renames']);
    expect(
      whys('ALTER TABLE tasks ADD CONSTRAINT tasks_owner FOREIGN KEY (owner) REFERENCES users (id);'),
    ).toEqual(["adds a foreign key the previous release's writes may break"]);
    expect(whys('ALTER TABLE tasks ADD UNIQUE (name);')).toEqual([
      "adds a uniqueness the previous release's writes may break",
    ]);
    expect(whys("ALTER TABLE tasks ADD code TEXT DEFAULT 'x' UNIQUE;")).toEqual([
      "adds a uniqueness the previous release's writes may break",
    ]);
    expect(whys('ALTER TABLE tasks ADD note TEXT NOT NULL DEFAULT NULL::text;')).toEqual([
      'adds a NOT NULL column without a default',
    ]);
    expect(whys("UPDATE tasks SET limits_json = '{}';")).toEqual(['rewrites rows']);
    expect(whys('ALTER TABLE logs DETACH PARTITION logs_1;')).toEqual([
      'changes how a table stores its rows',
    ]);
  });

  it('takes a statement with a reason just before it, and only that statement', () => {
    // Widening a check in one statement: one reason covers it.
    const widen = [
      'ALTER TABLE orchestration_packaging_logs',
      '  DROP CONSTRAINT IF EXISTS orchestration_packaging_logs_source_check,',
      "  ADD CONSTRAINT orchestration_packaging_logs_source_check CHECK (source IN ('quoll', 'npm', 'esbuild', 'pip'));",
    ].join('\n');
    expect(ruleViolations(widen)).toHaveLength(2);
    expect(ruleViolations(`-- expand-only: the same check, wider, in one statement\n${widen}`)).toEqual([]);
    // Written as 0010 did, in two statements: the reason covers the DROP, not the ADD after it.
    expect(ruleViolations(`-- expand-only: the same check, wider, follows\n${sqlOf(10)}`)).toEqual([
      "line 4: adds a check the previous release's writes may break: ALTER TABLE orchestration_packaging_logs ADD CONSTRAINT orchestration_packaging_logs_source_check CHECK (source IN ('quoll', 'npm', 'esbuild', 'pip'))",
    ]);
    // A reason with no words after the colon is none; a block comment can carry one too.
    expect(ruleViolations('-- expand-only:\nDROP INDEX a;')).toHaveLength(1);
    expect(ruleViolations('/* expand-only: rebuilt below */ DROP INDEX a; CREATE INDEX a ON t (x);')).toEqual(
      [],
    );
    // A waived DO block's body is waived with it; an unwaived one is read.
    const backfill = 'DO $$ BEGIN UPDATE tasks SET note = name; END $$;';
    expect(ruleViolations(backfill)).toEqual(['line 1: rewrites rows: BEGIN UPDATE tasks SET note = name']);
    expect(ruleViolations(`-- expand-only: fills the new column only\n${backfill}`)).toEqual([]);
  });
});

// Ordinary PostgreSQL spellings of what the release rule forbids (packages/quoll/migrations/README.md)
// must be flagged, or the test that "checks each PostgreSQL migration from 0018 on for the
// statements above" passes a breaking migration.
describe('the release-rule check flags ordinary spellings of forbidden statements', () => {
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
