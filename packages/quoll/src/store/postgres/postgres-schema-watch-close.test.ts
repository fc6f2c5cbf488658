import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createTestDatabase,
  postgresAvailability,
} from '../../../../../test/support/postgres-test-database.js';
import type { TestDatabase } from '../../../../../test/support/postgres-test-database.js';
import { PostgresDatabase } from './postgres-database.js';
import { PostgresSchemaWatch } from './postgres-schema-watch.js';

const { run } = await postgresAvailability();

// From the review of the schema watch: a check of fields close() sets to null itself stays
// green with clearTimeout and the unlisten call removed from close(). This one counts the
// process's real Timeout handles and the calls of the unlisten function (red on that mutant).
// Its own file: the count is process-wide, so no other test's pool or timer may run beside it.
describe.skipIf(!run)('schema watch close(): the real timer and subscription', () => {
  let database: TestDatabase;
  beforeAll(async () => {
    database = await createTestDatabase();
  });
  afterAll(async () => {
    await database?.drop();
  });

  it('no Timeout handle and no unlisten left behind', async () => {
    const db = await PostgresDatabase.open({ url: database.url, poolSize: 1, listenerCheckMs: 0 });
    let unlistened = 0;
    const listen = db.listen.bind(db);
    db.listen = async (...args: Parameters<PostgresDatabase['listen']>) => {
      const off = await listen(...args);
      return () => {
        unlistened++;
        off();
      };
    };
    const timeouts = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    try {
      const before = timeouts();
      const watch = new PostgresSchemaWatch(db, { checkMs: 60_000 });
      await watch.start();
      expect(timeouts()).toBe(before + 1);
      await watch.close();
      expect(timeouts()).toBe(before);
      expect(unlistened).toBe(1);
    } finally {
      await db.close();
    }
  });
});
