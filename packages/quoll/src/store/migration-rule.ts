/**
 * The release rule of PostgreSQL migrations (packages/quoll/migrations/README.md): each
 * release's migrations stay readable and writable by the previous release's code, which keeps
 * running on the migrated schema during a rolling upgrade. So a migration only expands: it adds
 * tables, nullable (or defaulted) columns, indexes and wider checks; it never drops, renames or
 * narrows what the previous release uses. Removing something ("contract") waits for a later
 * release, once no release that uses it can still be running.
 */

/** The first PostgreSQL migration written under the rule (0001–0017 predate it). */
export const FIRST_MIGRATION_UNDER_THE_RULE = 18;

/**
 * A statement the rule forbids can stay when a comment on the line before it says why it is
 * harmless to the previous release, e.g. `-- expand-only: drops a CHECK to add a wider one`.
 */
const WAIVER = /^\s*--\s*expand-only:\s*\S/;

const FORBIDDEN: readonly { pattern: RegExp; why: string }[] = [
  { pattern: /\bDROP\s+(TABLE|COLUMN|INDEX|VIEW|TYPE|FUNCTION|CONSTRAINT|SCHEMA)\b/i, why: 'drops' },
  { pattern: /\bRENAME\b/i, why: 'renames' },
  { pattern: /\bALTER\s+COLUMN\s+\S+\s+(SET\s+DATA\s+)?TYPE\b/i, why: "changes a column's type" },
  { pattern: /\bSET\s+NOT\s+NULL\b/i, why: 'makes a column NOT NULL' },
  { pattern: /\bTRUNCATE\b/i, why: 'removes rows' },
  { pattern: /\bDELETE\s+FROM\b/i, why: 'removes rows' },
  { pattern: /\bATTACH\s+PARTITION\b|\bPARTITION\s+BY\b/i, why: 'changes how a table stores its rows' },
];

/** `ADD COLUMN … NOT NULL` without a default: the previous release's INSERTs do not give it. */
const ADD_REQUIRED_COLUMN = /\bADD\s+COLUMN\b(?![^;]*\bDEFAULT\b)[^;]*\bNOT\s+NULL\b/i;

/**
 * The statements of a migration that break the rule, each as `line N: <why>: <line>`; empty
 * when it only expands. A line-based check (a reviewer's aid, not a SQL parser): a statement
 * spread over lines is judged by the line holding the keyword.
 */
export function ruleViolations(sql: string): string[] {
  const lines = sql.split('\n');
  const found: string[] = [];
  lines.forEach((raw, i) => {
    const line = raw.replace(/--.*$/, '');
    if (line.trim() === '') return;
    if (i > 0 && WAIVER.test(lines[i - 1] ?? '')) return;
    const hits = FORBIDDEN.filter((f) => f.pattern.test(line)).map((f) => f.why);
    if (ADD_REQUIRED_COLUMN.test(line)) hits.push('adds a NOT NULL column without a default');
    for (const why of new Set(hits)) found.push(`line ${i + 1}: ${why}: ${raw.trim()}`);
  });
  return found;
}
