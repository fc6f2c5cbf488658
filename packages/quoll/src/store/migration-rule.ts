/**
 * The release rule of PostgreSQL migrations (packages/quoll/migrations/README.md): each
 * release's migrations stay readable and writable by the previous release's code, which keeps
 * running on the migrated schema during a rolling upgrade. So a migration only expands: it adds
 * tables, nullable (or defaulted) columns and plain indexes; it never drops, renames, retypes or
 * narrows what the previous release uses. Removing something ("contract") waits for a later
 * release, once no release that uses it can still be running.
 */

/** The first PostgreSQL migration written under the rule (0001–0017 predate it). */
export const FIRST_MIGRATION_UNDER_THE_RULE = 18;

/**
 * A statement the rule flags can stay when a comment just before it says why it is harmless
 * to the previous release, e.g. `-- expand-only: drops a CHECK to add a wider one`. The
 * comment covers exactly the statement that follows it (the one its next SQL text is in).
 */
const WAIVER = /^\s*expand-only:\s*\S/;

/** One SQL statement of a migration, as the check reads it. */
interface Statement {
  /** The line (1-based) its first SQL text is on. */
  line: number;
  /** Its text without comments, whitespace collapsed (what the report shows). */
  shown: string;
  /** The same with every literal, quoted identifier and dollar-quoted body blanked (what is matched). */
  code: string;
  /** The dollar-quoted bodies in it (a `DO` block's or a function's), each with the line it starts on. */
  bodies: { line: number; sql: string }[];
  /** A `-- expand-only: <why>` comment came just before it. */
  waived: boolean;
}

const IDENT_CHAR = /[A-Za-z0-9_$]/;
const DOLLAR_TAG = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/;

/**
 * Splits SQL into statements on `;` outside comments, quoted strings, quoted identifiers and
 * dollar-quoted bodies (which nest `;`), dropping the comments.
 */
function statements(sql: string, firstLine = 1): Statement[] {
  const out: Statement[] = [];
  let shown = '';
  let code = '';
  let bodies: Statement['bodies'] = [];
  let line = firstLine;
  let startLine = 0;
  let pendingWaiver = false;
  let waived = false;
  const text = (s: string, c: string = s): void => {
    if (startLine === 0 && s.trim() !== '') {
      startLine = line;
      waived = pendingWaiver;
      pendingWaiver = false;
    }
    shown += s;
    code += c;
  };
  const end = (): void => {
    if (startLine !== 0) {
      out.push({ line: startLine, shown: squash(shown), code: squash(code), bodies, waived });
    }
    shown = '';
    code = '';
    bodies = [];
    startLine = 0;
    waived = false;
  };
  /** A waiver covers the statement its next SQL text is in: this one if it has begun, else the next. */
  const waiver = (): void => {
    if (startLine === 0) pendingWaiver = true;
    else waived = true;
  };
  /** Copies sql[i, j) as one literal or body, counting its lines; returns j. */
  const take = (i: number, j: number, blank: string): number => {
    text(sql.slice(i, j), blank);
    line += countLines(sql.slice(i, j));
    return j;
  };
  let i = 0;
  while (i < sql.length) {
    const ch = sql[i] ?? '';
    const next = sql[i + 1] ?? '';
    if (ch === '-' && next === '-') {
      const stop = sql.indexOf('\n', i);
      const j = stop === -1 ? sql.length : stop;
      if (WAIVER.test(sql.slice(i + 2, j))) waiver();
      text(' ');
      i = j;
    } else if (ch === '/' && next === '*') {
      // Block comments nest in PostgreSQL.
      let depth = 0;
      let j = i;
      while (j < sql.length) {
        if (sql.startsWith('/*', j)) {
          depth++;
          j += 2;
        } else if (sql.startsWith('*/', j)) {
          depth--;
          j += 2;
          if (depth === 0) break;
        } else j++;
      }
      const body = sql.slice(i + 2, j - 2);
      if (WAIVER.test(body)) waiver();
      line += countLines(sql.slice(i, j));
      text(' ');
      i = j;
    } else if (ch === "'") {
      // E'…' takes backslash escapes; every string takes '' for a quote.
      const escapes = /[eE]/.test(sql[i - 1] ?? '') && !IDENT_CHAR.test(sql[i - 2] ?? '');
      let j = i + 1;
      while (j < sql.length) {
        if (escapes && sql[j] === '\\') j += 2;
        else if (sql[j] === "'" && sql[j + 1] === "'") j += 2;
        else if (sql[j] === "'") break;
        else j++;
      }
      i = take(i, j + 1, "''");
    } else if (ch === '"') {
      let j = i + 1;
      while (j < sql.length) {
        if (sql[j] === '"' && sql[j + 1] === '"') j += 2;
        else if (sql[j] === '"') break;
        else j++;
      }
      i = take(i, j + 1, '"_"');
    } else if (ch === '$' && !IDENT_CHAR.test(sql[i - 1] ?? '') && DOLLAR_TAG.test(sql.slice(i))) {
      const tag = DOLLAR_TAG.exec(sql.slice(i))?.[0] ?? '$$';
      const stop = sql.indexOf(tag, i + tag.length);
      const j = stop === -1 ? sql.length : stop + tag.length;
      const bodyLine = line;
      bodies.push({ line: bodyLine, sql: sql.slice(i + tag.length, stop === -1 ? sql.length : stop) });
      i = take(i, j, '$$ $$');
    } else if (ch === ';') {
      end();
      i++;
    } else {
      if (ch === '\n') line++;
      text(ch);
      i++;
    }
  }
  end();
  return out;
}

function countLines(s: string): number {
  let n = 0;
  for (const c of s) if (c === '\n') n++;
  return n;
}

function squash(s: string): string {
  return s.replace(/\s+/g, ' ').trim();
}

/** Splits an `ALTER TABLE`'s actions on the commas outside parentheses. */
function actions(list: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let from = 0;
  for (let i = 0; i < list.length; i++) {
    const c = list[i];
    if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === ',' && depth === 0) {
      out.push(list.slice(from, i).trim());
      from = i + 1;
    }
  }
  out.push(list.slice(from).trim());
  return out.filter((a) => a !== '');
}

const ALTER_TABLE = /^ALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?(?:"_"|[^\s(]+)(?:\s*\*)?\s+(.*)$/is;
const CONSTRAINT_START = /^(?:CONSTRAINT\s+\S+\s+)?(CHECK|UNIQUE|PRIMARY\s+KEY|FOREIGN\s+KEY|EXCLUDE)\b/i;
/** A column's default that gives every row a value (not `DEFAULT NULL`). */
const NON_NULL_DEFAULT = /\bDEFAULT\s+(?!\(?\s*NULL\b)\S/i;
/** A column whose values the database makes (so the previous release's INSERTs need not). */
const GENERATED = /\bGENERATED\s+(ALWAYS|BY\s+DEFAULT)\b/i;

/** What one `ALTER TABLE` action does against the rule (empty: it only expands). */
function actionViolations(action: string): string[] {
  const found: string[] = [];
  const add = /^ADD\s+(.*)$/is.exec(action);
  if (add) {
    const rest = (add[1] ?? '').trim();
    const constraint = CONSTRAINT_START.exec(rest);
    if (constraint) {
      const kind = (constraint[1] ?? '').toUpperCase();
      if (kind === 'CHECK') found.push("adds a check the previous release's writes may break");
      else if (kind.startsWith('FOREIGN'))
        found.push("adds a foreign key the previous release's writes may break");
      else found.push("adds a uniqueness the previous release's writes may break");
      return found;
    }
    // ADD [COLUMN] [IF NOT EXISTS] name type [constraints]
    const column = rest.replace(/^COLUMN\s+/i, '').replace(/^IF\s+NOT\s+EXISTS\s+/i, '');
    if (/\bNOT\s+NULL\b/i.test(column) && !NON_NULL_DEFAULT.test(column) && !GENERATED.test(column)) {
      found.push('adds a NOT NULL column without a default');
    }
    // The previous release's INSERTs leave a new column at its default: unique only while
    // that is null. (A CHECK on a new column binds them through the default alone, which
    // PostgreSQL has checked against every existing row when the column was added.)
    if (/\bPRIMARY\s+KEY\b/i.test(column) || (/\bUNIQUE\b/i.test(column) && NON_NULL_DEFAULT.test(column))) {
      found.push("adds a uniqueness the previous release's writes may break");
    }
    return found;
  }
  // ALTER [COLUMN] name …  (not ALTER CONSTRAINT, which only changes when a check runs)
  const alter = /^ALTER\s+(?!CONSTRAINT\b)(?:COLUMN\s+)?\S+\s+(.*)$/is.exec(action);
  if (alter) {
    const what = alter[1] ?? '';
    if (/^(SET\s+DATA\s+)?TYPE\b/i.test(what)) found.push("changes a column's type");
    if (/^SET\s+NOT\s+NULL\b/i.test(what)) found.push('makes a column NOT NULL');
    if (/^DROP\s+DEFAULT\b/i.test(what))
      found.push("drops a default the previous release's INSERTs may rely on");
    else if (/^DROP\b/i.test(what)) found.push('drops');
  }
  return found;
}

/** What a statement does against the rule, deduplicated (empty: it only expands). */
function statementViolations(code: string): string[] {
  const found: string[] = [];
  const alterTable = ALTER_TABLE.exec(code);
  if (alterTable) for (const action of actions(alterTable[1] ?? '')) found.push(...actionViolations(action));
  // Whatever is left (and whatever ALTER TABLE's actions hid): the words alone.
  if (/\bDROP\b/i.test(code) && !found.some((f) => f.startsWith('drops'))) found.push('drops');
  if (/\bRENAME\b/i.test(code) || /\bSET\s+SCHEMA\b/i.test(code)) found.push('renames');
  if (/\bSET\s+NOT\s+NULL\b/i.test(code)) found.push('makes a column NOT NULL');
  if (/\bCREATE\s+UNIQUE\s+INDEX\b/i.test(code))
    found.push("adds a unique index the previous release's writes may break");
  if (/\bTRUNCATE\b/i.test(code) || /\bDELETE\s+FROM\b/i.test(code)) found.push('removes rows');
  if (/\bUPDATE\s+(?!OF\b)\S+\s+SET\b/i.test(code)) found.push('rewrites rows');
  if (/\b(ATTACH|DETACH)\s+PARTITION\b|\bPARTITION\s+BY\b/i.test(code)) {
    found.push('changes how a table stores its rows');
  }
  if (/\bEXECUTE\b(?!\s+(FUNCTION|PROCEDURE)\b)/i.test(code))
    found.push('runs SQL built at run time (EXECUTE), which this check cannot read');
  return [...new Set(found)];
}

/** The shown text of a statement, cut to a readable length. */
function excerpt(shown: string): string {
  return shown.length > 160 ? `${shown.slice(0, 159)}…` : shown;
}

/**
 * The statements of a migration that break the rule, each as `line N: <why>: <statement>`;
 * empty when it only expands. Statement-based (comments dropped, split on `;` outside quotes
 * and dollar-quoted bodies, whitespace collapsed, the optional `COLUMN` keyword optional), but
 * a reviewer's aid rather than a SQL parser: it errs towards flagging, and SQL held in string
 * literals (a function body in quotes, a string given to `EXECUTE`) is not read, so `EXECUTE`
 * itself is flagged. The statements of a `DO` block or a function's dollar-quoted body are
 * checked as statements of their own (waived with the statement that holds them).
 */
export function ruleViolations(sql: string, firstLine = 1): string[] {
  const found: string[] = [];
  for (const s of statements(sql, firstLine)) {
    if (s.waived) continue;
    for (const why of statementViolations(s.code)) found.push(`line ${s.line}: ${why}: ${excerpt(s.shown)}`);
    for (const body of s.bodies) found.push(...ruleViolations(body.sql, body.line));
  }
  return found;
}

/** A migration as `readMigrations` gives it. */
export interface MigrationFile {
  version: number;
  name: string;
  sql: string;
}

/**
 * Every migration from `from` on that breaks the rule, with what breaks it (the check the
 * test runs over `migrations/postgres`).
 */
export function migrationsBreakingTheRule(
  migrations: readonly MigrationFile[],
  from: number = FIRST_MIGRATION_UNDER_THE_RULE,
): { migration: string; violations: string[] }[] {
  return migrations
    .filter((m) => m.version >= from)
    .map((m) => ({
      migration: `${String(m.version).padStart(4, '0')}_${m.name}`,
      violations: ruleViolations(m.sql),
    }))
    .filter((m) => m.violations.length > 0);
}
