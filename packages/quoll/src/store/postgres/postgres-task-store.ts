import type { TaskRunStatus, TaskStatus, TaskType } from '@quoll/client/wire';
import type { Clock } from '../../clock/index.js';
import { systemClock } from '../../clock/index.js';
import { timeOrderedId } from '../../ids/index.js';
import type { IdGenerator } from '../../ids/index.js';
import type {
  ClaimOptions,
  ListRunsFilter,
  ListTasksFilter,
  NewTask,
  HeldRun,
  RunOwner,
  RunResult,
  TaskRecord,
  TaskRunRecord,
  TaskStore,
  TickOutcome,
  TickRecord,
} from '../../scheduler/index.js';
import { PG_LOCK_NOT_AVAILABLE, sqlState } from './postgres-database.js';
import type { PostgresDatabase, Sql } from './postgres-database.js';
import { PG_NOW_MS } from './postgres-node-store.js';
import type { RunRow, TaskRow, TickRow } from '../rows/index.js';
import { TASK_SELECT, toRun, toTask, toTick } from '../rows/index.js';

const SKIPPED_REASON = 'skipped: the previous run was still running';
/** TASK_SELECT's last_run_status for the row `t` (for RETURNING clauses). */
const LAST_RUN_STATUS = `(SELECT r.status FROM task_runs r WHERE r.task_id = t.id
  ORDER BY r.created_at DESC, r.id DESC LIMIT 1)`;

/**
 * {@link TaskStore} on PostgreSQL (migrations 0005 and 0006). The (task, tick) uniqueness and
 * "one running run per task" are constraints; creating a run locks the task row first
 * (`FOR UPDATE`), so it is ordered with a kill on any node: a kill that committed first is
 * seen, and a kill that comes after finds the run.
 */
export class PostgresTaskStore implements TaskStore {
  private readonly clock: Clock;
  private readonly newId: IdGenerator;

  constructor(
    private readonly db: PostgresDatabase,
    options: { clock?: Clock; newId?: IdGenerator } = {},
  ) {
    this.clock = options.clock ?? systemClock;
    this.newId = options.newId ?? timeOrderedId;
  }

  private nowIso(): string {
    return new Date(this.clock.now()).toISOString();
  }

  private async taskById(sql: Sql, id: string): Promise<TaskRecord | null> {
    const row = await sql.one<TaskRow>(`${TASK_SELECT} WHERE t.id = $1`, [id]);
    return row === null ? null : toTask(row);
  }

  async createTask(input: NewTask): Promise<TaskRecord> {
    const now = this.nowIso();
    const id = this.newId();
    // One round trip: the row as TASK_SELECT gives it (a new task has no last run).
    const row = await this.db.one<TaskRow>(
      `INSERT INTO tasks (id, name, type, status, orchestration_id, workspace_id, schedule, timezone,
         json_args, timeout_seconds, runs_as, limits_json, created_at, updated_at)
       VALUES ($1, $2, $3, 'pending', $4, $5, $6, $7, $8, $9, $12, $10, $11, $11)
       RETURNING *, NULL::text AS last_run_status`,
      [
        id,
        input.name,
        input.type,
        input.orchestrationId,
        input.workspaceId,
        input.schedule,
        input.timezone,
        JSON.stringify(input.jsonArgs),
        input.timeout,
        JSON.stringify(input.limits ?? {}),
        now,
        input.runsAs ?? 'workspace',
      ],
    );
    if (row === null) throw new Error(`task ${id} was not returned by its INSERT`);
    return toTask(row);
  }

  async getTask(id: string): Promise<TaskRecord | null> {
    return this.taskById(this.db, id);
  }

  async listTasks(filter: ListTasksFilter = {}): Promise<TaskRecord[]> {
    const where: string[] = [];
    const args: unknown[] = [];
    if (filter.killed !== true) where.push('NOT t.killed');
    if (filter.workspaceId !== undefined) {
      args.push(filter.workspaceId);
      where.push(`t.workspace_id = $${args.length}`);
    }
    if (filter.orchestrationId !== undefined) {
      args.push(filter.orchestrationId);
      where.push(`t.orchestration_id = $${args.length}`);
    }
    const rows = await this.db.rows<TaskRow>(
      `${TASK_SELECT} ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY t.created_at DESC, t.id DESC`,
      args,
    );
    return rows.map(toTask);
  }

  async setTaskStatus(id: string, status: Exclude<TaskStatus, 'killed'>): Promise<TaskRecord | null> {
    // One round trip: the updated row as TASK_SELECT gives it.
    const row = await this.db.one<TaskRow>(
      `UPDATE tasks t SET status = $1, updated_at = $2 WHERE t.id = $3 AND NOT t.killed
         AND (t.status <> 'pending_kill' OR $1 = 'pending_kill')
       RETURNING t.*, ${LAST_RUN_STATUS} AS last_run_status`,
      [status, this.nowIso(), id],
    );
    return row === null ? null : toTask(row);
  }

  async setTaskStatusReason(id: string, reason: string | null): Promise<void> {
    await this.db.run(
      `UPDATE tasks SET status_reason = $1, updated_at = $2 WHERE id = $3
         AND ($1::text IS NULL OR (NOT killed AND status <> 'pending_kill'))`,
      [reason, this.nowIso(), id],
    );
  }

  async markKilled(id: string): Promise<TaskRecord | null> {
    await this.db.run(
      "UPDATE tasks SET status = 'killed', killed = true, status_reason = NULL, updated_at = $1 WHERE id = $2 AND NOT killed",
      [this.nowIso(), id],
    );
    return this.taskById(this.db, id);
  }

  async createRun(input: {
    taskId: string;
    tick: number | null;
    owner?: RunOwner | null;
  }): Promise<TaskRunRecord | null> {
    return this.db.transaction(async (sql) => {
      const task = await lockTask(sql, input.taskId);
      if (task === null || !isLive(task)) return null;
      if (input.tick !== null && (await tickTaken(sql, input.taskId, input.tick))) return null;
      // A run-once task gets one run ever: checked in the insert itself (a statement after the
      // lock, so it sees a run committed by whoever held the lock before).
      const run = await this.insertRun(
        sql,
        input.taskId,
        input.tick,
        input.owner ?? null,
        task.type === 'Temporary Run',
      );
      if (run !== null && input.tick !== null) await advanceTick(sql, input.taskId, input.tick);
      return run;
    });
  }

  async createTickRuns(
    items: readonly { taskId: string; tick: number }[],
    owner: RunOwner | null = null,
  ): Promise<TickOutcome[]> {
    if (items.length === 0) return [];
    // Set-based, so a boundary of a thousand tasks is a handful of round-trips. The task rows
    // are locked first, in id order on every node: two nodes handling the same boundary queue
    // behind each other (never deadlock), and the second finds the first one's runs.
    const taskIds = [...new Set(items.map((i) => i.taskId))];
    try {
      return await this.#createTickRuns(items, taskIds, owner);
    } catch (err) {
      if (sqlState(err) !== PG_LOCK_NOT_AVAILABLE) throw err;
      // A node that stalled while holding these task rows (mid-boundary) must not stop cron
      // here: this boundary gives up (the scheduler keeps the tasks armed for their next tick).
      throw new Error(
        `another node has held the rows of these tasks for over ${this.db.coordinationLockTimeoutMs} ms (stalled inside a transaction?); their runs of this tick were not created`,
        { cause: err },
      );
    }
  }

  #createTickRuns(
    items: readonly { taskId: string; tick: number }[],
    taskIds: string[],
    owner: RunOwner | null,
  ): Promise<TickOutcome[]> {
    return this.db.coordinate(async (sql) => {
      const now = this.nowIso();
      const live = new Set(
        (
          await sql.rows<{ id: string; status: TaskStatus; killed: boolean }>(
            'SELECT id, status, killed FROM tasks WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE',
            [taskIds],
          )
        )
          .filter((t) => isLive({ type: 'Scheduled Run', status: t.status, killed: t.killed }))
          .map((t) => t.id),
      );
      const taken = new Set(
        (
          await sql.rows<{ task_id: string; tick: number }>(
            `WITH i AS (SELECT * FROM unnest($1::text[], $2::bigint[]) AS i(task_id, tick))
             SELECT r.task_id, r.tick FROM task_runs r JOIN i ON r.task_id = i.task_id AND r.tick = i.tick
             UNION ALL SELECT k.task_id, k.tick FROM task_ticks k JOIN i ON k.task_id = i.task_id AND k.tick = i.tick`,
            [items.map((i) => i.taskId), items.map((i) => i.tick)],
          )
        ).map((r) => tickKey(r.task_id, r.tick)),
      );
      const running = new Set(
        (
          await sql.rows<{ task_id: string }>(
            "SELECT task_id FROM task_runs WHERE task_id = ANY($1::text[]) AND status = 'running'",
            [taskIds],
          )
        ).map((r) => r.task_id),
      );
      const out: TickOutcome[] = [];
      const runs: { id: string; taskId: string; tick: number }[] = [];
      const skipped: { taskId: string; tick: number }[] = [];
      const newestTick = new Map<string, number>();
      for (const { taskId, tick } of items) {
        if (!live.has(taskId)) {
          out.push({ taskId, tick, outcome: 'inactive' });
          continue;
        }
        const key = tickKey(taskId, tick);
        if (taken.has(key)) {
          out.push({ taskId, tick, outcome: 'duplicate' });
          continue;
        }
        taken.add(key);
        newestTick.set(taskId, Math.max(tick, newestTick.get(taskId) ?? tick));
        if (running.has(taskId)) {
          skipped.push({ taskId, tick });
          out.push({ taskId, tick, outcome: 'skipped' });
          continue;
        }
        running.add(taskId);
        const run = { id: this.newId(), taskId, tick };
        runs.push(run);
        out.push({
          taskId,
          tick,
          outcome: 'created',
          run: {
            id: run.id,
            taskId,
            status: 'running',
            tick,
            exitCode: null,
            reason: null,
            pid: null,
            nodeId: owner?.nodeId ?? null,
            createdAt: now,
            updatedAt: now,
          },
        });
      }
      if (runs.length > 0) {
        const inserted = await sql.run(
          `INSERT INTO task_runs (id, task_id, tick, status, created_at, updated_at, node_id, lease_until)
           SELECT id, task_id, tick, 'running', $4, $4, $5::text,
             CASE WHEN $5::text IS NULL THEN NULL ELSE ${PG_NOW_MS} + $6::bigint END
           FROM unnest($1::text[], $2::text[], $3::bigint[]) AS r(id, task_id, tick)`,
          [
            runs.map((r) => r.id),
            runs.map((r) => r.taskId),
            runs.map((r) => r.tick),
            now,
            owner?.nodeId ?? null,
            owner?.leaseMs ?? 0,
          ],
        );
        // The task rows are locked, so nothing can have taken these keys meanwhile.
        if (inserted !== runs.length) throw new Error(`inserted ${inserted} of ${runs.length} tick runs`);
      }
      if (skipped.length > 0) {
        await sql.run(
          `INSERT INTO task_ticks (task_id, tick, kind, reason, recorded_at)
           SELECT task_id, tick, 'skipped', $3, $4 FROM unnest($1::text[], $2::bigint[]) AS k(task_id, tick)
           ON CONFLICT (task_id, tick) DO NOTHING`,
          [skipped.map((k) => k.taskId), skipped.map((k) => k.tick), SKIPPED_REASON, now],
        );
      }
      if (newestTick.size > 0) {
        await sql.run(
          `UPDATE tasks t SET last_tick = u.tick FROM unnest($1::text[], $2::bigint[]) AS u(id, tick)
           WHERE t.id = u.id AND (t.last_tick IS NULL OR t.last_tick < u.tick)`,
          [[...newestTick.keys()], [...newestTick.values()]],
        );
      }
      return out;
    });
  }

  private async insertRun(
    sql: Sql,
    taskId: string,
    tick: number | null,
    owner: RunOwner | null,
    onlyIfFirst = false,
  ): Promise<TaskRunRecord | null> {
    const now = this.nowIso();
    const row = await sql.one<RunRow>(
      `INSERT INTO task_runs (id, task_id, tick, status, created_at, updated_at, node_id, lease_until)
       SELECT $1::text, $2::text, $3::bigint, 'running', $4::text, $4::text, $5::text,
         CASE WHEN $5::text IS NULL THEN NULL ELSE ${PG_NOW_MS} + $6::bigint END
       WHERE NOT $7::boolean OR NOT EXISTS (SELECT 1 FROM task_runs WHERE task_id = $2::text)
       ON CONFLICT DO NOTHING RETURNING *`,
      [this.newId(), taskId, tick, now, owner?.nodeId ?? null, owner?.leaseMs ?? 0, onlyIfFirst],
    );
    return row === null ? null : toRun(row);
  }

  async claimRuns(owner: RunOwner, limit: number, options: ClaimOptions = {}): Promise<TaskRunRecord[]> {
    if (limit <= 0) return [];
    // One statement. Each waiting run gets its slot in its workspace on this node: the runs
    // of that workspace this node holds, plus its rank among the workspace's waiting runs.
    // Slots over the cap are never taken (a run ranked before one skipped below only lowers
    // the real count), and the lowest slots go first, so workspaces take turns. SKIP LOCKED:
    // nodes claiming together each take other rows; none waits, none doubles.
    const rows = await this.db.rows<RunRow>(
      `WITH held AS (
         SELECT t.workspace_id, count(*) AS n FROM task_runs h JOIN tasks t ON t.id = h.task_id
         WHERE h.status = 'running' AND h.node_id = $1 GROUP BY t.workspace_id
       ), ranked AS (
         SELECT w.id, coalesce(held.n, 0)
             + row_number() OVER (PARTITION BY t.workspace_id ORDER BY w.created_at, w.id) AS slot
         FROM task_runs w JOIN tasks t ON t.id = w.task_id
         LEFT JOIN held ON held.workspace_id = t.workspace_id
         WHERE w.status = 'running' AND w.node_id IS NULL
       ), picked AS (
         SELECT r.id FROM task_runs r JOIN ranked k ON k.id = r.id
         WHERE ($4::bigint IS NULL OR k.slot <= $4::bigint) AND r.status = 'running' AND r.node_id IS NULL
         ORDER BY k.slot, r.created_at, r.id LIMIT $3
         FOR UPDATE OF r SKIP LOCKED
       )
       UPDATE task_runs SET node_id = $1, lease_until = ${PG_NOW_MS} + $2::bigint
       FROM picked WHERE task_runs.id = picked.id AND task_runs.status = 'running' AND task_runs.node_id IS NULL
       RETURNING task_runs.*`,
      [owner.nodeId, owner.leaseMs, limit, options.workspaceLimit ?? null],
    );
    return rows.map(toRun).sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id));
  }

  async renewRunLeases(owner: RunOwner, runIds: readonly string[]): Promise<HeldRun[]> {
    if (runIds.length === 0) return [];
    const rows = await this.db.rows<{ id: string; task_id: string; task_status: TaskStatus }>(
      `UPDATE task_runs r SET lease_until = ${PG_NOW_MS} + $2::bigint
       FROM tasks t
       WHERE r.id = ANY($3::text[]) AND r.node_id = $1 AND r.status = 'running' AND t.id = r.task_id
       RETURNING r.id, r.task_id, t.status AS task_status`,
      [owner.nodeId, owner.leaseMs, [...runIds]],
    );
    return rows.map((r) => ({ runId: r.id, taskId: r.task_id, taskStatus: r.task_status }));
  }

  async expiredRuns(limit = 1_000): Promise<TaskRunRecord[]> {
    const rows = await this.db.rows<RunRow>(
      `SELECT * FROM task_runs WHERE status = 'running' AND node_id IS NOT NULL
         AND lease_until < ${PG_NOW_MS} ORDER BY created_at, id LIMIT $1`,
      [limit],
    );
    return rows.map(toRun);
  }

  async closeExpiredRun(runId: string, result: RunResult): Promise<TaskRunRecord | null> {
    const row = await this.db.one<RunRow>(
      `UPDATE task_runs SET status = $1, exit_code = $2, reason = $3, updated_at = $4
       WHERE id = $5 AND status = 'running' AND node_id IS NOT NULL AND lease_until < ${PG_NOW_MS}
       RETURNING *`,
      [result.status, result.exitCode, result.reason, this.nowIso(), runId],
    );
    return row === null ? null : toRun(row);
  }

  async setRunPid(runId: string, pid: number): Promise<void> {
    await this.db.run('UPDATE task_runs SET pid = $1 WHERE id = $2', [pid, runId]);
  }

  async finishRun(runId: string, result: RunResult): Promise<TaskRunRecord | null> {
    const row = await this.db.one<RunRow>(
      `UPDATE task_runs SET status = $1, exit_code = $2, reason = $3, updated_at = $4
       WHERE id = $5 AND status = 'running' RETURNING *`,
      [result.status, result.exitCode, result.reason, this.nowIso(), runId],
    );
    return row === null ? null : toRun(row);
  }

  async closeUnclaimedRun(runId: string, result: RunResult): Promise<TaskRunRecord | null> {
    const row = await this.db.one<RunRow>(
      `UPDATE task_runs SET status = $1, exit_code = $2, reason = $3, updated_at = $4
       WHERE id = $5 AND status = 'running' AND node_id IS NULL RETURNING *`,
      [result.status, result.exitCode, result.reason, this.nowIso(), runId],
    );
    return row === null ? null : toRun(row);
  }

  async releaseRun(runId: string, owner: RunOwner): Promise<TaskRunRecord | null> {
    const row = await this.db.one<RunRow>(
      `UPDATE task_runs SET node_id = NULL, lease_until = NULL
       WHERE id = $1 AND status = 'running' AND node_id = $2 RETURNING *`,
      [runId, owner.nodeId],
    );
    return row === null ? null : toRun(row);
  }

  async getRun(runId: string): Promise<TaskRunRecord | null> {
    const row = await this.db.one<RunRow>('SELECT * FROM task_runs WHERE id = $1', [runId]);
    return row === null ? null : toRun(row);
  }

  async listRuns(taskId: string, filter: ListRunsFilter = {}): Promise<TaskRunRecord[]> {
    const args: unknown[] = [taskId];
    let sql = 'SELECT * FROM task_runs WHERE task_id = $1';
    if (filter.status !== undefined && filter.status !== 'all') {
      args.push(filter.status);
      sql += ` AND status = $${args.length}`;
    }
    if (filter.before !== undefined) {
      args.push(filter.before.createdAt, filter.before.id);
      sql += ` AND (created_at, id) < ($${args.length - 1}, $${args.length})`;
    }
    sql += ' ORDER BY created_at DESC, id DESC';
    if (filter.limit !== undefined) {
      args.push(Math.max(0, Math.floor(filter.limit)));
      sql += ` LIMIT $${args.length}`;
    }
    return (await this.db.rows<RunRow>(sql, args)).map(toRun);
  }

  async runningRuns(): Promise<TaskRunRecord[]> {
    return (
      await this.db.rows<RunRow>("SELECT * FROM task_runs WHERE status = 'running' ORDER BY created_at, id")
    ).map(toRun);
  }

  async recordSkippedTick(taskId: string, tick: number, reason: string): Promise<void> {
    await this.db.transaction(async (sql) => {
      await insertTick(sql, taskId, tick, 'skipped', reason, this.nowIso());
      await advanceTick(sql, taskId, tick);
    });
  }

  async recordMissedTicks(taskId: string, ticks: readonly number[], reason: string): Promise<void> {
    if (ticks.length === 0) return;
    await this.db.transaction(async (sql) => {
      // Under the task's row, as a boundary's runs are made: a peer's boundary in flight for one
      // of these ticks commits first, and its run keeps the tick from being called missed.
      await sql.run('SELECT 1 FROM tasks WHERE id = $1 FOR UPDATE', [taskId]);
      await sql.run(
        `INSERT INTO task_ticks (task_id, tick, kind, reason, recorded_at)
         SELECT $1, t, 'missed', $3, $4 FROM unnest($2::bigint[]) AS t
          WHERE NOT EXISTS (SELECT 1 FROM task_runs r WHERE r.task_id = $1 AND r.tick = t)
         ON CONFLICT (task_id, tick) DO NOTHING`,
        [taskId, [...ticks], reason, this.nowIso()],
      );
      await advanceTick(sql, taskId, Math.max(...ticks));
    });
  }

  async advanceLastTick(taskId: string, tick: number): Promise<void> {
    await advanceTick(this.db, taskId, tick);
  }

  async listTickRecords(taskId: string, filter: { limit?: number } = {}): Promise<TickRecord[]> {
    const rows =
      filter.limit === undefined
        ? await this.db.rows<TickRow>('SELECT * FROM task_ticks WHERE task_id = $1 ORDER BY tick DESC', [
            taskId,
          ])
        : await this.db.rows<TickRow>(
            'SELECT * FROM task_ticks WHERE task_id = $1 ORDER BY tick DESC LIMIT $2',
            [taskId, Math.max(0, Math.floor(filter.limit))],
          );
    return rows.map(toTick);
  }

  async lastRunStatus(taskId: string): Promise<TaskRunStatus | 'unknown'> {
    const row = await this.db.one<{ status: TaskRunStatus }>(
      'SELECT status FROM task_runs WHERE task_id = $1 ORDER BY created_at DESC, id DESC LIMIT 1',
      [taskId],
    );
    return row?.status ?? 'unknown';
  }
}

interface LockedTask {
  type: TaskType;
  status: TaskStatus;
  killed: boolean;
}

/** Locks the task row until the transaction ends (orders run creation with kills). */
function lockTask(sql: Sql, taskId: string): Promise<LockedTask | null> {
  return sql.one<LockedTask & Record<string, unknown>>(
    'SELECT type, status, killed FROM tasks WHERE id = $1 FOR UPDATE',
    [taskId],
  );
}

function isLive(task: LockedTask): boolean {
  return !task.killed && task.status !== 'pending_kill';
}

async function tickTaken(sql: Sql, taskId: string, tick: number): Promise<boolean> {
  const row = await sql.one(
    `SELECT 1 AS one FROM task_runs WHERE task_id = $1 AND tick = $2
     UNION ALL SELECT 1 FROM task_ticks WHERE task_id = $1 AND tick = $2 LIMIT 1`,
    [taskId, tick],
  );
  return row !== null;
}

async function advanceTick(sql: Sql, taskId: string, tick: number): Promise<void> {
  await sql.run('UPDATE tasks SET last_tick = $1 WHERE id = $2 AND (last_tick IS NULL OR last_tick < $1)', [
    tick,
    taskId,
  ]);
}

async function insertTick(
  sql: Sql,
  taskId: string,
  tick: number,
  kind: 'skipped' | 'missed',
  reason: string,
  at: string,
): Promise<void> {
  await sql.run(
    `INSERT INTO task_ticks (task_id, tick, kind, reason, recorded_at) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (task_id, tick) DO NOTHING`,
    [taskId, tick, kind, reason, at],
  );
}

function tickKey(taskId: string, tick: number): string {
  return `${taskId}\u0000${tick}`;
}
