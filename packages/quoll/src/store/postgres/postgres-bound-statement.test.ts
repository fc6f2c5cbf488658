import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createTestDatabase,
  postgresAvailability,
} from '../../../../../test/support/postgres-test-database.js';
import type { TestDatabase } from '../../../../../test/support/postgres-test-database.js';
import { BoundMessageBuffer, PostgresBoundStatement } from './postgres-bound-statement.js';
import { PostgresDatabase } from './postgres-database.js';

const { run: runPostgresTests, skipReason } = await postgresAvailability();

describe.skipIf(!runPostgresTests)(
  `bound statements (${runPostgresTests ? 'PostgreSQL reachable' : skipReason})`,
  () => {
    let database: TestDatabase;
    let db: PostgresDatabase;
    const buffer = new BoundMessageBuffer();
    const insert = 'INSERT INTO t VALUES ($1, $2, $3), ($4, $5, $6) RETURNING a, length(b), c';

    beforeAll(async () => {
      database = await createTestDatabase();
      db = await PostgresDatabase.open({ url: database.url, schema: 'bound', poolSize: 1 });
      await db.run('CREATE TABLE t (a INTEGER, b BYTEA, c TEXT)');
    });
    afterAll(async () => {
      await db?.close();
      await database?.drop();
    });

    it('sends text, NULL and chunked byte parameters, on a buffer grown and reused between statements', async () => {
      for (const size of [0, 3, 100_000, 9_000_000, 5]) {
        const bytes = Buffer.alloc(size);
        for (let i = 0; i < size; i++) bytes[i] = (i * 7) % 251;
        const chunks = [bytes.subarray(0, size >> 1), bytes.subarray(size >> 1)];
        const result = await db.bound(
          new PostgresBoundStatement(
            'bound_insert',
            insert,
            [String(size), { chunks, bytes: size }, 'é', '-1', null, null],
            buffer,
          ),
        );
        expect(result).toEqual({
          rowCount: 2,
          rows: [
            [String(size), String(size), 'é'],
            ['-1', null, null],
          ],
        });
        const back = await db.one<{ b: Buffer }>('SELECT b FROM t WHERE a = $1', [size]);
        expect(back?.b.equals(bytes)).toBe(true);
      }
    });

    it('rejects a refused statement and the connection goes on; a name keeps its text', async () => {
      const bad = new PostgresBoundStatement(
        'bound_insert',
        insert,
        ['x', null, null, '1', null, null],
        buffer,
      );
      await expect(db.bound(bad)).rejects.toMatchObject({ code: '22P02' });
      const other = new PostgresBoundStatement('bound_insert', 'SELECT 1', [], buffer);
      await expect(db.bound(other)).rejects.toThrow(/different statement/);
      const ok = new PostgresBoundStatement('bound_insert', insert, ['7', null, 'x', '8', null, 'y'], buffer);
      expect((await db.bound(ok)).rowCount).toBe(2);
      expect(
        () => new PostgresBoundStatement('n', 'SELECT $1', [{ chunks: [Buffer.alloc(2)], bytes: 3 }], buffer),
      ).toThrow(/hold 2 bytes, not 3/);
    });
  },
);
