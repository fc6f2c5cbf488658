import type { KeyCheckStore, SealedDetails } from '../../connections/index.js';
import type { PostgresDatabase } from './postgres-database.js';

/** {@link KeyCheckStore} on PostgreSQL (table `key_checks`, migration 0007). */
export class PostgresKeyCheckStore implements KeyCheckStore {
  constructor(private readonly db: PostgresDatabase) {}

  async ensureKeyCheck(candidate: SealedDetails, at: string): Promise<SealedDetails> {
    // Nodes starting together: the first insert wins, the others read what it wrote.
    await this.db.run(
      "INSERT INTO key_checks (name, key_id, sealed, created_at) VALUES ('master-key', $1, $2, $3) ON CONFLICT (name) DO NOTHING",
      [candidate.keyId, candidate.blob, at],
    );
    const row = await this.db.one<{ key_id: string; sealed: Buffer }>(
      "SELECT key_id, sealed FROM key_checks WHERE name = 'master-key'",
    );
    if (row === null) throw new Error('the key check vanished right after it was written');
    return { keyId: row.key_id, blob: row.sealed };
  }
}
