import type { OrchestrationStatus } from '@quoll/client/wire';
import type { OrchestrationRecord } from '../../orchestrations/index.js';

export interface OrchestrationRow {
  id: string;
  workspace_id: number;
  name: string;
  file_name: string;
  sha: string;
  status: OrchestrationStatus;
  error: string | null;
  entrypoint: string | null;
  dep_hash: string | null;
  package_sha: string | null;
  created_at: string;
  updated_at: string;
}

export const toOrchestration = (row: OrchestrationRow): OrchestrationRecord => ({
  id: row.id,
  workspaceId: row.workspace_id,
  name: row.name,
  fileName: row.file_name,
  sha: row.sha,
  status: row.status,
  error: row.error,
  entrypoint: row.entrypoint,
  depHash: row.dep_hash,
  packageSha: row.package_sha,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
});
