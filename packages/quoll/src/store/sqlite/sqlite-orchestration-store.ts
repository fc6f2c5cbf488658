import type { OrchestrationStatus } from '@quoll/client/wire';
import type {
  PackagingClaim,
  NewOrchestration,
  OrchestrationRecord,
  OrchestrationStatusUpdate,
  OrchestrationStore,
  PackagingLogLine,
  PackagingLogSource,
} from '../../orchestrations/index.js';
import type { Clock } from '../../clock/index.js';
import { systemClock } from '../../clock/index.js';
import type { SqliteHandle } from './sqlite-database.js';
import type { OrchestrationRow } from '../rows/index.js';
import { toOrchestration } from '../rows/index.js';
import { isUniqueViolation } from './sqlite-errors.js';

interface PackagingLogRow {
  time: string;
  source: PackagingLogSource;
  line: string;
}

/**
 * The SQLite backend of {@link OrchestrationStore} (tables from migration
 * `0004_orchestrations.sql`).
 *
 * @example
 * const store = new SqliteOrchestrationStore(openSqliteDatabase(join(home, 'quoll.db')));
 */
export class SqliteOrchestrationStore implements OrchestrationStore {
  private readonly clock: Clock;

  /** @param options `clock`: the clock leases are stamped and expired by (one machine's). */
  constructor(
    private readonly db: SqliteHandle,
    options: { clock?: Clock } = {},
  ) {
    this.clock = options.clock ?? systemClock;
  }

  createOrchestration(input: NewOrchestration): Promise<OrchestrationRecord> {
    const row = this.db
      .prepare(
        `INSERT INTO orchestrations (id, workspace_id, name, file_name, sha, status, error, entrypoint, dep_hash, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, 'pending_packaging', NULL, ?, NULL, ?, ?) RETURNING *`,
      )
      .get(
        input.id,
        input.workspaceId,
        input.name,
        input.fileName,
        input.sha,
        input.entrypoint,
        input.createdAt,
        input.createdAt,
      ) as OrchestrationRow;
    return Promise.resolve(toOrchestration(row));
  }

  getOrchestration(id: string): Promise<OrchestrationRecord | null> {
    const row = this.db.prepare('SELECT * FROM orchestrations WHERE id = ?').get(id) as
      OrchestrationRow | undefined;
    return Promise.resolve(row ? toOrchestration(row) : null);
  }

  listOrchestrations(filter: { workspaceId?: number } = {}): Promise<OrchestrationRecord[]> {
    const rows = (
      filter.workspaceId === undefined
        ? this.db.prepare('SELECT * FROM orchestrations ORDER BY created_at, id').all()
        : this.db
            .prepare('SELECT * FROM orchestrations WHERE workspace_id = ? ORDER BY created_at, id')
            .all(filter.workspaceId)
    ) as OrchestrationRow[];
    return Promise.resolve(rows.map(toOrchestration));
  }

  listOrchestrationsByStatus(statuses: readonly OrchestrationStatus[]): Promise<OrchestrationRecord[]> {
    if (statuses.length === 0) return Promise.resolve([]);
    const marks = statuses.map(() => '?').join(', ');
    const rows = this.db
      .prepare(`SELECT * FROM orchestrations WHERE status IN (${marks}) ORDER BY created_at, id`)
      .all(...statuses) as OrchestrationRow[];
    return Promise.resolve(rows.map(toOrchestration));
  }

  setOrchestrationStatus(
    id: string,
    status: OrchestrationStatus,
    update: OrchestrationStatusUpdate,
  ): Promise<OrchestrationRecord | null> {
    // Omitted entrypoint/depHash/packageSha keep their value; an omitted error is cleared, so a
    // re-packaged orchestration does not carry a stale failure reason.
    const row = this.db
      .prepare(
        `UPDATE orchestrations SET
           status = @status,
           error = @error,
           entrypoint = CASE WHEN @setEntrypoint THEN @entrypoint ELSE entrypoint END,
           dep_hash = CASE WHEN @setDepHash THEN @depHash ELSE dep_hash END,
           package_sha = CASE WHEN @setPackageSha THEN @packageSha ELSE package_sha END,
           updated_at = @updatedAt
         WHERE id = @id RETURNING *`,
      )
      .get({
        id,
        status,
        error: update.error ?? null,
        setEntrypoint: update.entrypoint !== undefined ? 1 : 0,
        entrypoint: update.entrypoint ?? null,
        setDepHash: update.depHash !== undefined ? 1 : 0,
        depHash: update.depHash ?? null,
        setPackageSha: update.packageSha !== undefined ? 1 : 0,
        packageSha: update.packageSha ?? null,
        updatedAt: update.updatedAt,
      }) as OrchestrationRow | undefined;
    return Promise.resolve(row ? toOrchestration(row) : null);
  }

  claimOrchestrationForPackaging(claim: PackagingClaim): Promise<OrchestrationRecord | null> {
    // One statement: SQLite runs it as one write, so two claimers never take the same row.
    const row = this.db
      .prepare(
        `UPDATE orchestrations SET status = 'packaging', lease_owner = @owner, lease_until = @now + @leaseMs, updated_at = @at
         WHERE id = (
           SELECT id FROM orchestrations
           WHERE status = 'pending_packaging'
              OR (status = 'packaging' AND (lease_until IS NULL OR lease_until < @now))
           ORDER BY created_at, id LIMIT 1)
         RETURNING *`,
      )
      .get({ owner: claim.owner, at: claim.at, leaseMs: claim.leaseMs, now: this.clock.now() }) as
      OrchestrationRow | undefined;
    return Promise.resolve(row ? toOrchestration(row) : null);
  }

  renewPackagingLease(id: string, owner: string, leaseMs: number): Promise<boolean> {
    const r = this.db
      .prepare(
        "UPDATE orchestrations SET lease_until = ? WHERE id = ? AND status = 'packaging' AND lease_owner = ?",
      )
      .run(this.clock.now() + leaseMs, id, owner);
    return Promise.resolve(r.changes > 0);
  }

  requeueOrchestrationPackaging(owner: string, at: string): Promise<number> {
    const result = this.db
      .prepare(
        `UPDATE orchestrations SET status = 'pending_packaging', lease_owner = NULL, lease_until = NULL, updated_at = ?
         WHERE status = 'packaging' AND lease_owner = ?`,
      )
      .run(at, owner);
    return Promise.resolve(result.changes);
  }

  appendPackagingLog(orchestrationId: string, lines: readonly PackagingLogLine[]): Promise<void> {
    if (lines.length === 0) return Promise.resolve();
    const next = this.db.prepare(
      'SELECT COALESCE(MAX(seq), 0) AS seq FROM orchestration_packaging_logs WHERE orchestration_id = ?',
    );
    const insert = this.db.prepare(
      'INSERT INTO orchestration_packaging_logs (orchestration_id, seq, time, source, line) VALUES (?, ?, ?, ?, ?)',
    );
    const append = this.db.transaction(() => {
      let seq = (next.get(orchestrationId) as { seq: number }).seq;
      for (const l of lines) insert.run(orchestrationId, ++seq, l.time, l.source, l.line);
    });
    // The primary key (orchestration, seq) refuses a number another writer took between the
    // read and the insert; the whole batch then retries after the new last line.
    for (let attempt = 1; ; attempt++) {
      try {
        append();
        return Promise.resolve();
      } catch (err) {
        if (!isUniqueViolation(err) || attempt >= 10) return Promise.reject(asError(err));
      }
    }
  }

  getPackagingLog(orchestrationId: string): Promise<PackagingLogLine[]> {
    const rows = this.db
      .prepare(
        'SELECT time, source, line FROM orchestration_packaging_logs WHERE orchestration_id = ? ORDER BY seq',
      )
      .all(orchestrationId) as PackagingLogRow[];
    return Promise.resolve(rows.map((r) => ({ time: r.time, source: r.source, line: r.line })));
  }
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}
