import { copyFileSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MIGRATIONS_DIR } from '../../packages/quoll/src/store/sqlite/sqlite-database.js';

/**
 * A fresh temporary directory holding the one migration an inference log store's SQLite segment
 * index needs (`migrations/0002_inference_logs.sql`), as the log store tests set up their home;
 * open it with `openSqliteDatabase(join(dir, 'quoll.db'), join(dir, 'migrations'))`.
 */
export function logIndexHome(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  mkdirSync(join(dir, 'migrations'));
  copyFileSync(
    join(MIGRATIONS_DIR, '0002_inference_logs.sql'),
    join(dir, 'migrations', '0002_inference_logs.sql'),
  );
  return dir;
}
