import type { TokenRecord, TokenStore } from '../../auth/index.js';
import type { SqliteHandle } from './sqlite-database.js';
import type { TokenRow } from '../rows/index.js';
import { toToken } from '../rows/index.js';

/** {@link TokenStore} on SQLite (table `api_tokens`, migrations 0001 and 0015). */
export class SqliteTokenStore implements TokenStore {
  constructor(private readonly db: SqliteHandle) {}

  async insertToken(t: TokenRecord): Promise<void> {
    this.db
      .prepare(
        'INSERT INTO api_tokens (id, token_hash, kind, workspace_id, subject, created_at, expires_at, revoked_at, parent_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
      )
      .run(
        t.id,
        t.tokenHash,
        t.kind,
        t.workspaceId,
        t.subject,
        t.createdAt,
        t.expiresAt,
        t.revokedAt,
        t.parentId,
      );
  }

  async findTokenByHash(tokenHash: string): Promise<TokenRecord | null> {
    const r = this.db.prepare('SELECT * FROM api_tokens WHERE token_hash = ?').get(tokenHash) as
      TokenRow | undefined;
    return r ? toToken(r) : null;
  }

  async findTokenById(id: string): Promise<TokenRecord | null> {
    const r = this.db.prepare('SELECT * FROM api_tokens WHERE id = ?').get(id) as TokenRow | undefined;
    return r ? toToken(r) : null;
  }

  async revokeToken(id: string, at: string): Promise<boolean> {
    return (
      this.db.prepare('UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL').run(at, id)
        .changes === 1
    );
  }

  async listApiTokens(liveAt: string): Promise<TokenRecord[]> {
    const rows = this.db
      .prepare(
        'SELECT * FROM api_tokens WHERE revoked_at IS NULL AND parent_id IS NULL AND (expires_at IS NULL OR expires_at > ?) ORDER BY created_at DESC, id',
      )
      .all(liveAt) as TokenRow[];
    return rows.map(toToken);
  }

  async listTokensBySubjectPrefix(prefix: string): Promise<TokenRecord[]> {
    const rows = this.db
      .prepare(
        'SELECT * FROM api_tokens WHERE revoked_at IS NULL AND substr(subject, 1, ?) = ? ORDER BY created_at DESC, id',
      )
      .all(prefix.length, prefix) as TokenRow[];
    return rows.map(toToken);
  }

  async revokeTokensBySubjectPrefix(
    prefix: string,
    at: string,
    keepSubjects: readonly string[] = [],
  ): Promise<number> {
    const keep = new Set(keepSubjects);
    const revoke = this.db.prepare(
      'UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL',
    );
    return this.db.transaction((): number => {
      const rows = this.db
        .prepare('SELECT id, subject FROM api_tokens WHERE revoked_at IS NULL AND substr(subject, 1, ?) = ?')
        .all(prefix.length, prefix) as { id: string; subject: string }[];
      let n = 0;
      for (const r of rows) if (!keep.has(r.subject)) n += revoke.run(at, r.id).changes;
      return n;
    })();
  }

  async revokeEndedRunTokens(prefix: string, at: string): Promise<number> {
    return Promise.resolve(
      this.db
        .prepare(
          `UPDATE api_tokens SET revoked_at = ?
           WHERE revoked_at IS NULL AND substr(subject, 1, ?) = ?
             AND NOT EXISTS (SELECT 1 FROM task_runs r
                              WHERE r.id = substr(api_tokens.subject, ? + 1) AND r.status = 'running')`,
        )
        .run(at, prefix.length, prefix, prefix.length).changes,
    );
  }

  async setTokenExpiry(id: string, expiresAt: string): Promise<void> {
    this.db
      .prepare('UPDATE api_tokens SET expires_at = ? WHERE id = ? AND revoked_at IS NULL')
      .run(expiresAt, id);
  }
}
