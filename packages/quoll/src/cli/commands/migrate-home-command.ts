import { QuollError } from '@quoll/client/errors';
import { ApiError } from '../../errors/index.js';
import { HomeLock } from '../../server/index.js';
import { checkMigrationSource, migrateHome } from '../../store/migrate-home.js';
import type { MigrateHomeReport } from '../../store/migrate-home.js';

// The CLI's entry to a home migration: it holds the home's lock (no server may run on it while
// it is copied) around the store-level copy, which is why it lives at the edge (cli/).

/** Options of `quoll admin migrate`. */
export interface MigrateHomeCommandOptions {
  /** The embedded home to copy. */
  fromHome: string;
  /** The cluster database, `postgres://…`. */
  to: string;
  /** Where progress lines go. @default a line on stdout */
  print?: (line: string) => void;
}

/**
 * `quoll admin migrate --from-home DIR --to postgres://…`: copies the home into an empty
 * cluster database and verifies the copy; a re-run continues an interrupted one. Errors carry
 * catalogue codes (`migrate_target_not_empty`, `migrate_source_invalid`,
 * `migrate_verification_failed`), printed by the CLI as `error [code]: …`.
 */
export async function runMigrateHomeCommand(options: MigrateHomeCommandOptions): Promise<MigrateHomeReport> {
  const print = options.print ?? ((line: string) => void process.stdout.write(`${line}\n`));
  try {
    checkMigrationSource(options.fromHome);
  } catch (err) {
    throw err instanceof ApiError ? new QuollError(err.code, err.message, 0, err.details) : err;
  }
  // A server running on the home would keep writing while it is copied: HomeLockedError names it.
  const lock = await HomeLock.acquire(options.fromHome);
  try {
    const report = await migrateHome({ home: options.fromHome, url: options.to, print });
    print(
      `done: the database holds the home (verified). Give every node the home's master key (${options.fromHome}/master.key, or QUOLL_MASTER_KEY) and start it with --database.`,
    );
    return report;
  } catch (err) {
    if (err instanceof ApiError) throw new QuollError(err.code, err.message, 0, err.details);
    throw err;
  } finally {
    await lock.release();
  }
}
