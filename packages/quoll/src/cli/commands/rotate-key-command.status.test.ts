import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import {
  createTestDatabase,
  postgresAvailability,
} from '../../../../../test/support/postgres-test-database.js';
import type { TestDatabase } from '../../../../../test/support/postgres-test-database.js';
import { runClusterKeyStatusCommand } from './rotate-key-command.js';

const { run: runPostgresTests, skipReason } = await postgresAvailability();

let database: TestDatabase | null = null;
afterEach(async () => {
  await database?.drop();
  database = null;
});

async function tables(url: string): Promise<string[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const res = await client.query<{ table_name: string }>(
      "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
    );
    return res.rows.map((r) => r.table_name);
  } finally {
    await client.end();
  }
}

describe.skipIf(!runPostgresTests)(
  `runClusterKeyStatusCommand (${runPostgresTests ? 'PostgreSQL reachable' : skipReason})`,
  () => {
    it('changes nothing: a database no Quoll node ever used is not migrated, and is said to have no key check', async () => {
      database = await createTestDatabase();
      const lines: string[] = [];
      const status = await runClusterKeyStatusCommand({
        database: { kind: 'postgres', url: database.url },
        env: {},
        print: (l) => lines.push(l),
      });
      expect(status.checkKeyId).toBeNull();
      expect(status.rotation.canProceed).toBe(false);
      expect(lines[0]).toBe('key check: none (no node has started on this database)');
      // A read-only command on a mistyped URL (or before the nodes' release migrated) creates nothing.
      expect(await tables(database.url)).toEqual([]);
    });

    it('reads a migrated database as it is', async () => {
      database = await createTestDatabase({ migrated: true });
      const before = await tables(database.url);
      const status = await runClusterKeyStatusCommand({
        database: { kind: 'postgres', url: database.url },
        env: {},
        json: true,
        print: () => undefined,
      });
      expect(status.nodes).toEqual([]);
      expect(await tables(database.url)).toEqual(before);
    });
  },
);

describe('runClusterKeyStatusCommand on an unreachable database', () => {
  it('fails saying the database (its password redacted) cannot be reached', async () => {
    const err = await runClusterKeyStatusCommand({
      database: { kind: 'postgres', url: 'postgres://quoll:s3cret-pw@127.0.0.1:1/quoll' },
      env: {},
      print: () => undefined,
    }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(String((err as Error).message)).toContain('cannot reach the database at');
    expect(String((err as Error).message)).not.toContain('s3cret-pw');
  });
});
