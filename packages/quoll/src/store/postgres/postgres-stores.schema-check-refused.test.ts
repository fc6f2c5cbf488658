import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createTestDatabase,
  postgresAvailability,
  TEST_PG_URL,
} from '../../../../../test/support/postgres-test-database.js';
import type { TestDatabase } from '../../../../../test/support/postgres-test-database.js';
import { openStore } from '../open-store.js';

const { run } = await postgresAvailability();

// openPostgresStores refusing a setting after it opened the database (the schema watch's
// constructor validates schemaCheckMs) closes what it opened: no migrated pool's connection is
// left open (idle for 30 s, keeping a process that handles the error alive).
// Its own database: it counts every connection to it.
describe.skipIf(!run)('a refused schemaCheckMs leaves no connection behind', () => {
  let database: TestDatabase;
  beforeAll(async () => {
    database = await createTestDatabase();
  });
  afterAll(async () => {
    await database?.drop();
  });

  it('openStore with schemaCheckMs -1 rejects and closes what it opened', async () => {
    await expect(
      openStore({ kind: 'postgres', url: database.url, poolSize: 2, schemaCheckMs: -1 }),
    ).rejects.toThrow(/Invalid schema check interval/);
    const admin = new pg.Client({ connectionString: TEST_PG_URL });
    await admin.connect();
    try {
      // A closed pool's connections leave within a moment; the pool's idle timeout is 30 s.
      await new Promise((r) => setTimeout(r, 1_000));
      const { rows } = await admin.query<{ n: string }>(
        "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1 AND application_name = 'quoll'",
        [database.name],
      );
      expect(Number(rows[0]?.n)).toBe(0);
    } finally {
      await admin.end();
    }
  });
});
