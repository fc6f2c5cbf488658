import type { OrchestrationStatus } from '@quoll/client/wire';
import type {
  NewOrchestration,
  OrchestrationRecord,
  OrchestrationStatusUpdate,
  OrchestrationStore,
  PackagingClaim,
  PackagingLogLine,
  PackagingLogSource,
} from '../../orchestrations/index.js';
import type { PostgresDatabase } from './postgres-database.js';
import { PG_UNIQUE_VIOLATION, sqlState } from './postgres-database.js';
import { PG_NOW_MS } from './postgres-node-store.js';

import type { OrchestrationRow } from '../rows/index.js';
import { toOrchestration } from '../rows/index.js';

/** {@link OrchestrationStore} on PostgreSQL (migrations 0004 and 0006). */
export class PostgresOrchestrationStore implements OrchestrationStore {
  constructor(private readonly db: PostgresDatabase) {}

  async createOrchestration(input: NewOrchestration): Promise<OrchestrationRecord> {
    const row = await this.db.one<OrchestrationRow>(
      `INSERT INTO orchestrations (id, workspace_id, name, file_name, sha, status, error, entrypoint, dep_hash, created_at, updated_at)
       VALUES ($1, $2, $3, $4, $5, 'pending_packaging', NULL, $6, NULL, $7, $7) RETURNING *`,
      [input.id, input.workspaceId, input.name, input.fileName, input.sha, input.entrypoint, input.createdAt],
    );
    if (row === null) throw new Error('INSERT … RETURNING gave no row');
    return toOrchestration(row);
  }

  async getOrchestration(id: string): Promise<OrchestrationRecord | null> {
    const row = await this.db.one<OrchestrationRow>('SELECT * FROM orchestrations WHERE id = $1', [id]);
    return row ? toOrchestration(row) : null;
  }

  async listOrchestrations(filter: { workspaceId?: number } = {}): Promise<OrchestrationRecord[]> {
    const rows =
      filter.workspaceId === undefined
        ? await this.db.rows<OrchestrationRow>('SELECT * FROM orchestrations ORDER BY created_at, id')
        : await this.db.rows<OrchestrationRow>(
            'SELECT * FROM orchestrations WHERE workspace_id = $1 ORDER BY created_at, id',
            [filter.workspaceId],
          );
    return rows.map(toOrchestration);
  }

  async listOrchestrationsByStatus(statuses: readonly OrchestrationStatus[]): Promise<OrchestrationRecord[]> {
    if (statuses.length === 0) return [];
    const rows = await this.db.rows<OrchestrationRow>(
      'SELECT * FROM orchestrations WHERE status = ANY($1::text[]) ORDER BY created_at, id',
      [[...statuses]],
    );
    return rows.map(toOrchestration);
  }

  async setOrchestrationStatus(
    id: string,
    status: OrchestrationStatus,
    update: OrchestrationStatusUpdate,
  ): Promise<OrchestrationRecord | null> {
    // Omitted entrypoint/depHash/packageSha keep their value; an omitted error is cleared.
    const row = await this.db.one<OrchestrationRow>(
      `UPDATE orchestrations SET
         status = $2,
         error = $3,
         entrypoint = CASE WHEN $4 THEN $5 ELSE entrypoint END,
         dep_hash = CASE WHEN $6 THEN $7 ELSE dep_hash END,
         updated_at = $8,
         package_sha = CASE WHEN $9 THEN $10 ELSE package_sha END
       WHERE id = $1 RETURNING *`,
      [
        id,
        status,
        update.error ?? null,
        update.entrypoint !== undefined,
        update.entrypoint ?? null,
        update.depHash !== undefined,
        update.depHash ?? null,
        update.updatedAt,
        update.packageSha !== undefined,
        update.packageSha ?? null,
      ],
    );
    return row ? toOrchestration(row) : null;
  }

  async claimOrchestrationForPackaging(claim: PackagingClaim): Promise<OrchestrationRecord | null> {
    // SKIP LOCKED: a row another claimer is taking right now is passed over, not waited for,
    // so claimers on several nodes never take the same job and never block each other.
    const row = await this.db.one<OrchestrationRow>(
      // The database's clock stamps and expires leases (as for task runs): nodes' clocks differ.
      `UPDATE orchestrations SET status = 'packaging', lease_owner = $1, lease_until = ${PG_NOW_MS} + $2::bigint, updated_at = $3
       WHERE id = (
         SELECT id FROM orchestrations
         WHERE status = 'pending_packaging'
            OR (status = 'packaging' AND (lease_until IS NULL OR lease_until < ${PG_NOW_MS}))
         ORDER BY created_at, id LIMIT 1
         FOR UPDATE SKIP LOCKED)
       RETURNING *`,
      [claim.owner, claim.leaseMs, claim.at],
    );
    return row ? toOrchestration(row) : null;
  }

  async renewPackagingLease(id: string, owner: string, leaseMs: number): Promise<boolean> {
    const n = await this.db.run(
      `UPDATE orchestrations SET lease_until = ${PG_NOW_MS} + $1::bigint
       WHERE id = $2 AND status = 'packaging' AND lease_owner = $3`,
      [leaseMs, id, owner],
    );
    return n > 0;
  }

  async requeueOrchestrationPackaging(owner: string, at: string): Promise<number> {
    return this.db.run(
      `UPDATE orchestrations SET status = 'pending_packaging', lease_owner = NULL, lease_until = NULL, updated_at = $1
       WHERE status = 'packaging' AND lease_owner = $2`,
      [at, owner],
    );
  }

  async appendPackagingLog(orchestrationId: string, lines: readonly PackagingLogLine[]): Promise<void> {
    if (lines.length === 0) return;
    // The primary key (orchestration, seq) refuses numbers a concurrent writer took after our
    // read of the last one; the whole batch then retries after the new last line.
    for (let attempt = 1; ; attempt++) {
      try {
        await this.db.transaction(async (sql) => {
          const last = await sql.one<{ seq: number }>(
            'SELECT COALESCE(MAX(seq), 0) AS seq FROM orchestration_packaging_logs WHERE orchestration_id = $1',
            [orchestrationId],
          );
          const from = (last?.seq ?? 0) + 1;
          await sql.run(
            `INSERT INTO orchestration_packaging_logs (orchestration_id, seq, time, source, line)
             SELECT $1, $2 + i - 1, t, s, l FROM unnest($3::text[], $4::text[], $5::text[]) WITH ORDINALITY AS x(t, s, l, i)`,
            [
              orchestrationId,
              from,
              lines.map((l) => l.time),
              lines.map((l) => l.source),
              lines.map((l) => l.line),
            ],
          );
        });
        return;
      } catch (err) {
        if (sqlState(err) !== PG_UNIQUE_VIOLATION || attempt >= 20) throw err;
      }
    }
  }

  async getPackagingLog(orchestrationId: string): Promise<PackagingLogLine[]> {
    const rows = await this.db.rows<{ time: string; source: PackagingLogSource; line: string }>(
      'SELECT time, source, line FROM orchestration_packaging_logs WHERE orchestration_id = $1 ORDER BY seq',
      [orchestrationId],
    );
    return rows.map((r) => ({ time: r.time, source: r.source, line: r.line }));
  }
}
