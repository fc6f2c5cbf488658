/** A stored API token (only its hash is kept). */
export interface TokenRecord {
  id: string;
  tokenHash: string;
  kind: 'admin' | 'workspace';
  workspaceId: number | null;
  subject: string;
  createdAt: string;
  expiresAt: string | null;
  revokedAt: string | null;
  /**
   * The API token a console session or sign-in link was made from: it stops working once that
   * one is revoked or expired. Null for API tokens (and run tokens).
   */
  parentId: string | null;
}

/**
 * Storage port for API tokens. Every method is one atomic step; several processes may use
 * the same store at once.
 */
export interface TokenStore {
  insertToken(token: TokenRecord): Promise<void>;
  findTokenByHash(tokenHash: string): Promise<TokenRecord | null>;
  /** The token with this id (revoked or not), or null. */
  findTokenById(id: string): Promise<TokenRecord | null>;
  /**
   * Revokes a token (a revoked token stays revoked, with its first revocation time); true when
   * this call revoked it, false when it was already revoked or does not exist (so a one-time
   * token is used once even by concurrent callers).
   */
  revokeToken(id: string, at: string): Promise<boolean>;
  /**
   * Unrevoked tokens made from no other (API tokens and run tokens; not console sessions or
   * sign-in links) that have no expiry or expire after `liveAt` (ISO time), newest first.
   */
  listApiTokens(liveAt: string): Promise<TokenRecord[]>;
  /** Unrevoked tokens whose subject starts with `prefix` (compared literally), newest first. */
  listTokensBySubjectPrefix(prefix: string): Promise<TokenRecord[]>;
  /**
   * Revokes every unrevoked token whose subject starts with `prefix`, except those whose
   * subject is in `keepSubjects`; returns how many were revoked.
   */
  revokeTokensBySubjectPrefix(prefix: string, at: string, keepSubjects?: readonly string[]): Promise<number>;
  /**
   * Revokes every unrevoked token whose subject is `prefix` followed by the id of a task run
   * that is not running (ended, or missing); returns how many were revoked. One statement that
   * checks the runs itself: a run created and given its token meanwhile (by any node) keeps it.
   */
  revokeEndedRunTokens(prefix: string, at: string): Promise<number>;
  /** Sets the expiry of an unrevoked token (ISO time). */
  setTokenExpiry(id: string, expiresAt: string): Promise<void>;
}
