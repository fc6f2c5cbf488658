import type { KeyCheckStore, SealedDetails } from '../../connections/index.js';
import type { SqliteHandle } from './sqlite-database.js';

/** {@link KeyCheckStore} on SQLite (table `key_checks`, migration 0007). */
export class SqliteKeyCheckStore implements KeyCheckStore {
  constructor(private readonly db: SqliteHandle) {}

  async ensureKeyCheck(candidate: SealedDetails, at: string): Promise<SealedDetails> {
    this.db
      .prepare(
        "INSERT INTO key_checks (name, key_id, sealed, created_at) VALUES ('master-key', ?, ?, ?) ON CONFLICT DO NOTHING",
      )
      .run(candidate.keyId, candidate.blob, at);
    const row = this.db.prepare("SELECT key_id, sealed FROM key_checks WHERE name = 'master-key'").get() as {
      key_id: string;
      sealed: Buffer;
    };
    return { keyId: row.key_id, blob: row.sealed };
  }
}
