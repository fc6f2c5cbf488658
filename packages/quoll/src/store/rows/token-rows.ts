import type { TokenRecord } from '../../auth/index.js';

export interface TokenRow {
  id: string;
  token_hash: string;
  kind: 'admin' | 'workspace';
  workspace_id: number | null;
  subject: string;
  created_at: string;
  expires_at: string | null;
  revoked_at: string | null;
  parent_id: string | null;
}

export const toToken = (r: TokenRow): TokenRecord => ({
  id: r.id,
  tokenHash: r.token_hash,
  kind: r.kind,
  workspaceId: r.workspace_id,
  subject: r.subject,
  createdAt: r.created_at,
  expiresAt: r.expires_at,
  revokedAt: r.revoked_at,
  parentId: r.parent_id,
});
