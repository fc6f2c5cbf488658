import type { TokenRecord, TokenStore } from '../../auth/index.js';
import type { PostgresDatabase } from './postgres-database.js';
import type { TokenRow } from '../rows/index.js';
import { toToken } from '../rows/index.js';

/** {@link TokenStore} on PostgreSQL (table `api_tokens`, migrations 0001 and 0015). */
export class PostgresTokenStore implements TokenStore {
  constructor(private readonly db: PostgresDatabase) {}

  async insertToken(t: TokenRecord): Promise<void> {
    await this.db.run(
      'INSERT INTO api_tokens (id, token_hash, kind, workspace_id, subject, created_at, expires_at, revoked_at, parent_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)',
      [
        t.id,
        t.tokenHash,
        t.kind,
        t.workspaceId,
        t.subject,
        t.createdAt,
        t.expiresAt,
        t.revokedAt,
        t.parentId,
      ],
    );
  }

  async findTokenByHash(tokenHash: string): Promise<TokenRecord | null> {
    const r = await this.db.one<TokenRow>('SELECT * FROM api_tokens WHERE token_hash = $1', [tokenHash]);
    return r ? toToken(r) : null;
  }

  async findTokenById(id: string): Promise<TokenRecord | null> {
    const r = await this.db.one<TokenRow>('SELECT * FROM api_tokens WHERE id = $1', [id]);
    return r ? toToken(r) : null;
  }

  async revokeToken(id: string, at: string): Promise<boolean> {
    return (
      (await this.db.run('UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL', [
        at,
        id,
      ])) === 1
    );
  }

  async listApiTokens(liveAt: string): Promise<TokenRecord[]> {
    // ISO times compare as text, byte by byte (COLLATE "C": a locale's order may skip punctuation).
    const rows = await this.db.rows<TokenRow>(
      `SELECT * FROM api_tokens
       WHERE revoked_at IS NULL AND parent_id IS NULL AND (expires_at IS NULL OR expires_at COLLATE "C" > $1)
       ORDER BY created_at DESC, id`,
      [liveAt],
    );
    return rows.map(toToken);
  }

  async listTokensBySubjectPrefix(prefix: string): Promise<TokenRecord[]> {
    const rows = await this.db.rows<TokenRow>(
      'SELECT * FROM api_tokens WHERE revoked_at IS NULL AND left(subject, length($1)) = $1 ORDER BY created_at DESC, id',
      [prefix],
    );
    return rows.map(toToken);
  }

  async revokeTokensBySubjectPrefix(
    prefix: string,
    at: string,
    keepSubjects: readonly string[] = [],
  ): Promise<number> {
    // left() compares the prefix literally (no LIKE wildcards); one statement, so it is atomic.
    return this.db.run(
      `UPDATE api_tokens SET revoked_at = $1
       WHERE revoked_at IS NULL AND left(subject, length($2)) = $2 AND NOT (subject = ANY($3::text[]))`,
      [at, prefix, [...keepSubjects]],
    );
  }

  async revokeEndedRunTokens(prefix: string, at: string): Promise<number> {
    // One statement, one snapshot: a token it sees was issued after its run was created, so
    // the run is seen too.
    return this.db.run(
      `UPDATE api_tokens SET revoked_at = $1
       WHERE revoked_at IS NULL AND left(subject, length($2)) = $2
         AND NOT EXISTS (SELECT 1 FROM task_runs r
                          WHERE r.id = substr(api_tokens.subject, length($2) + 1) AND r.status = 'running')`,
      [at, prefix],
    );
  }

  async setTokenExpiry(id: string, expiresAt: string): Promise<void> {
    await this.db.run('UPDATE api_tokens SET expires_at = $1 WHERE id = $2 AND revoked_at IS NULL', [
      expiresAt,
      id,
    ]);
  }
}
