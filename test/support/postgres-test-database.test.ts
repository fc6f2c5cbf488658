import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { POSTGRES_MIGRATIONS_DIR } from '../../packages/quoll/src/store/postgres/postgres-database.js';
import { readMigrations } from '../../packages/quoll/src/store/schema-migrations.js';
import { createTestDatabase, postgresAvailability, type TestDatabase } from './postgres-test-database.js';

const { run } = await postgresAvailability();

async function tables(url: string): Promise<{ names: string[]; versions: number[] }> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const names = (
      await client.query<{ n: string }>(
        `SELECT table_name AS n FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1`,
      )
    ).rows.map((r) => r.n);
    const versions = names.includes('schema_migrations')
      ? (await client.query<{ v: number }>('SELECT version AS v FROM schema_migrations ORDER BY 1')).rows.map(
          (r) => r.v,
        )
      : [];
    return { names, versions };
  } finally {
    await client.end();
  }
}

describe.skipIf(!run)('createTestDatabase', () => {
  const made: TestDatabase[] = [];
  afterAll(async () => {
    for (const db of made) await db.drop();
  });

  it('is empty by default (for the tests of migrations), and migrated to this code with { migrated: true }', async () => {
    const empty = await createTestDatabase();
    made.push(empty);
    expect(await tables(empty.url)).toEqual({ names: [], versions: [] });

    const code = readMigrations(POSTGRES_MIGRATIONS_DIR).map((m) => m.version);
    // Two, side by side: each a database of its own, copied from the same migrated template.
    const [a, b] = await Promise.all([
      createTestDatabase({ migrated: true }),
      createTestDatabase({ migrated: true }),
    ]);
    made.push(a, b);
    expect(a.name).not.toBe(b.name);
    for (const db of [a, b]) {
      const { names, versions } = await tables(db.url);
      expect(versions).toEqual(code);
      expect(names).toContain('workspaces');
    }
    // A row written in one is not in the other (nor in the template they were copied from).
    const client = new pg.Client({ connectionString: a.url });
    await client.connect();
    await client.query(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (100000, 'x', 'y')`);
    await client.end();
    expect((await tables(b.url)).versions).toEqual(code);
    const c = await createTestDatabase({ migrated: true });
    made.push(c);
    expect((await tables(c.url)).versions).toEqual(code);
  });
});
