import type { TaskRunStatus, TaskStatus, TaskType } from '@quoll/client/wire';
import type { Clock } from '../../clock/index.js';
import { systemClock } from '../../clock/index.js';
import { timeOrderedId } from '../../ids/index.js';
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
import type { SqliteHandle } from './sqlite-database.js';
import type { RunRow, TaskRow, TickRow } from '../rows/index.js';
import { TASK_SELECT, toRun, toTask, toTick } from '../rows/index.js';

/** Options of {@link SqliteTaskStore}. */
export interface SqliteTaskStoreOptions {
  /** Source of created/updated times. @default systemClock */
  clock?: Clock;
  /** Id generator for tasks and runs; ids must sort by creation within a millisecond. @default time-ordered UUIDs (version 7) */
  newId?: () => string;
}

/**
 * {@link TaskStore} on SQLite (migrations 0005 and 0006). The (task, tick) uniqueness and
 * "one running run per task" are constraints of the schema (as in PostgreSQL); "no run for a
 * task being killed" is checked in the same transaction as the insert, which SQLite runs
 * as the one writer.
 *
 * @example
 * const store = new SqliteTaskStore(openSqliteDatabase(`${home}/quoll.db`));
 */
export class SqliteTaskStore implements TaskStore {
  private readonly clock: Clock;
  private readonly newId: () => string;
  private readonly insertRunTx: (
    taskId: string,
    tick: number | null,
    owner: RunOwner | null,
  ) => TaskRunRecord | null;
  private readonly tickRunsTx: (
    items: readonly { taskId: string; tick: number }[],
    owner: RunOwner | null,
  ) => TickOutcome[];
  private readonly claimTx: (
    owner: RunOwner,
    limit: number,
    workspaceLimit: number | null,
  ) => TaskRunRecord[];
  private readonly missedTx: (taskId: string, ticks: readonly number[], reason: string) => void;

  constructor(
    private readonly db: SqliteHandle,
    options: SqliteTaskStoreOptions = {},
  ) {
    this.clock = options.clock ?? systemClock;
    this.newId = options.newId ?? timeOrderedId;

    const getTask = db.prepare<[string], { type: TaskType; status: TaskStatus; killed: number }>(
      'SELECT type, status, killed FROM tasks WHERE id = ?',
    );
    const hasRunning = db.prepare<[string], { one: number }>(
      "SELECT 1 AS one FROM task_runs WHERE task_id = ? AND status = 'running' LIMIT 1",
    );
    const hasAnyRun = db.prepare<[string], { one: number }>(
      'SELECT 1 AS one FROM task_runs WHERE task_id = ? LIMIT 1',
    );
    const tickTaken = db.prepare<[string, number, string, number], { one: number }>(
      'SELECT 1 AS one FROM task_runs WHERE task_id = ? AND tick = ? UNION ALL SELECT 1 FROM task_ticks WHERE task_id = ? AND tick = ? LIMIT 1',
    );
    const insertRun = db.prepare(
      `INSERT INTO task_runs (id, task_id, tick, status, created_at, updated_at, node_id, lease_until)
       VALUES (?, ?, ?, 'running', ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
    );
    const leaseOf = (owner: RunOwner | null): [string | null, number | null] =>
      owner === null ? [null, null] : [owner.nodeId, this.clock.now() + owner.leaseMs];
    const insertTick = db.prepare(
      `INSERT INTO task_ticks (task_id, tick, kind, reason, recorded_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (task_id, tick) DO NOTHING`,
    );
    const advanceTick = db.prepare(
      'UPDATE tasks SET last_tick = ? WHERE id = ? AND (last_tick IS NULL OR last_tick < ?)',
    );
    const live = (status: TaskStatus, killed: number): boolean => killed === 0 && status !== 'pending_kill';

    this.insertRunTx = db.transaction(
      (taskId: string, tick: number | null, owner: RunOwner | null): TaskRunRecord | null => {
        const task = getTask.get(taskId);
        if (task === undefined || !live(task.status, task.killed)) return null;
        if (hasRunning.get(taskId) !== undefined) return null;
        if (task.type === 'Temporary Run' && hasAnyRun.get(taskId) !== undefined) return null;
        if (tick !== null && tickTaken.get(taskId, tick, taskId, tick) !== undefined) return null;
        const now = this.nowIso();
        const id = this.newId();
        if (insertRun.run(id, taskId, tick, now, now, ...leaseOf(owner)).changes === 0) return null;
        if (tick !== null) advanceTick.run(tick, taskId, tick);
        return {
          id,
          taskId,
          status: 'running',
          tick,
          exitCode: null,
          reason: null,
          pid: null,
          nodeId: owner?.nodeId ?? null,
          createdAt: now,
          updatedAt: now,
        };
      },
    );

    this.tickRunsTx = db.transaction(
      (items: readonly { taskId: string; tick: number }[], owner: RunOwner | null): TickOutcome[] => {
        const now = this.nowIso();
        return items.map(({ taskId, tick }): TickOutcome => {
          const task = getTask.get(taskId);
          if (task === undefined || !live(task.status, task.killed))
            return { taskId, tick, outcome: 'inactive' };
          if (tickTaken.get(taskId, tick, taskId, tick) !== undefined)
            return { taskId, tick, outcome: 'duplicate' };
          advanceTick.run(tick, taskId, tick);
          if (hasRunning.get(taskId) !== undefined) {
            insertTick.run(taskId, tick, 'skipped', 'skipped: the previous run was still running', now);
            return { taskId, tick, outcome: 'skipped' };
          }
          const id = this.newId();
          insertRun.run(id, taskId, tick, now, now, ...leaseOf(owner));
          const run: TaskRunRecord = {
            id,
            taskId,
            status: 'running',
            tick,
            exitCode: null,
            reason: null,
            pid: null,
            nodeId: owner?.nodeId ?? null,
            createdAt: now,
            updatedAt: now,
          };
          return { taskId, tick, outcome: 'created', run };
        });
      },
    );

    // Each waiting run's slot in its workspace on the claiming node: the runs of that workspace
    // the node holds, plus its rank among the workspace's waiting runs (see claimRuns).
    const unclaimed = db.prepare<[string, number | null, number | null, number], RunRow>(
      `WITH held AS (
         SELECT t.workspace_id, count(*) AS n FROM task_runs h JOIN tasks t ON t.id = h.task_id
         WHERE h.status = 'running' AND h.node_id = ? GROUP BY t.workspace_id
       ), ranked AS (
         SELECT w.id, coalesce(held.n, 0)
             + row_number() OVER (PARTITION BY t.workspace_id ORDER BY w.created_at, w.id) AS slot
         FROM task_runs w JOIN tasks t ON t.id = w.task_id
         LEFT JOIN held ON held.workspace_id = t.workspace_id
         WHERE w.status = 'running' AND w.node_id IS NULL
       )
       SELECT r.* FROM task_runs r JOIN ranked k ON k.id = r.id
       WHERE (? IS NULL OR k.slot <= ?)
       ORDER BY k.slot, r.created_at, r.id LIMIT ?`,
    );
    const claim = db.prepare(
      "UPDATE task_runs SET node_id = ?, lease_until = ? WHERE id = ? AND status = 'running' AND node_id IS NULL",
    );
    this.claimTx = db.transaction(
      (owner: RunOwner, limit: number, workspaceLimit: number | null): TaskRunRecord[] => {
        const until = this.clock.now() + owner.leaseMs;
        return unclaimed
          .all(owner.nodeId, workspaceLimit, workspaceLimit, limit)
          .filter((r) => claim.run(owner.nodeId, until, r.id).changes > 0)
          .map((r) => toRun({ ...r, node_id: owner.nodeId }))
          .sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id));
      },
    );

    const tickHasRun = db.prepare<[string, number], { one: number }>(
      'SELECT 1 AS one FROM task_runs WHERE task_id = ? AND tick = ?',
    );
    this.missedTx = db.transaction((taskId: string, ticks: readonly number[], reason: string) => {
      const now = this.nowIso();
      let newest: number | null = null;
      for (const tick of ticks) {
        // A tick that has a run was not missed (one store, one writer: nothing else to wait for).
        if (tickHasRun.get(taskId, tick) !== undefined) continue;
        insertTick.run(taskId, tick, 'missed', reason, now);
        newest = newest === null ? tick : Math.max(newest, tick);
      }
      if (newest !== null) advanceTick.run(newest, taskId, newest);
    });
    this.recordSkippedTickTx = db.transaction((taskId: string, tick: number, reason: string) => {
      insertTick.run(taskId, tick, 'skipped', reason, this.nowIso());
      advanceTick.run(tick, taskId, tick);
    });
    this.advanceTick = (taskId, tick) => void advanceTick.run(tick, taskId, tick);
  }

  private readonly recordSkippedTickTx: (taskId: string, tick: number, reason: string) => void;
  private readonly advanceTick: (taskId: string, tick: number) => void;

  private nowIso(): string {
    return new Date(this.clock.now()).toISOString();
  }

  private taskById(id: string): TaskRecord | null {
    const row = this.db.prepare<[string], TaskRow>(`${TASK_SELECT} WHERE t.id = ?`).get(id);
    return row === undefined ? null : toTask(row);
  }

  async createTask(input: NewTask): Promise<TaskRecord> {
    const now = this.nowIso();
    const id = this.newId();
    this.db
      .prepare(
        `INSERT INTO tasks (id, name, type, status, orchestration_id, workspace_id, schedule, timezone,
           json_args, timeout_seconds, runs_as, limits_json, created_at, updated_at)
         VALUES (?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        id,
        input.name,
        input.type,
        input.orchestrationId,
        input.workspaceId,
        input.schedule,
        input.timezone,
        JSON.stringify(input.jsonArgs),
        input.timeout,
        input.runsAs ?? 'workspace',
        JSON.stringify(input.limits ?? {}),
        now,
        now,
      );
    return Promise.resolve(this.taskById(id) as TaskRecord);
  }

  async getTask(id: string): Promise<TaskRecord | null> {
    return Promise.resolve(this.taskById(id));
  }

  async listTasks(filter: ListTasksFilter = {}): Promise<TaskRecord[]> {
    const where: string[] = [];
    const args: (string | number)[] = [];
    if (filter.killed !== true) where.push('t.killed = 0');
    if (filter.workspaceId !== undefined) {
      where.push('t.workspace_id = ?');
      args.push(filter.workspaceId);
    }
    if (filter.orchestrationId !== undefined) {
      where.push('t.orchestration_id = ?');
      args.push(filter.orchestrationId);
    }
    const sql = `${TASK_SELECT} ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY t.created_at DESC, t.id DESC`;
    return Promise.resolve(
      this.db
        .prepare<(string | number)[], TaskRow>(sql)
        .all(...args)
        .map(toTask),
    );
  }

  async setTaskStatus(id: string, status: Exclude<TaskStatus, 'killed'>): Promise<TaskRecord | null> {
    const changed = this.db
      .prepare(
        `UPDATE tasks SET status = ?, updated_at = ? WHERE id = ? AND killed = 0
           AND (status <> 'pending_kill' OR ? = 'pending_kill')`,
      )
      .run(status, this.nowIso(), id, status).changes;
    return Promise.resolve(changed === 0 ? null : this.taskById(id));
  }

  async setTaskStatusReason(id: string, reason: string | null): Promise<void> {
    this.db
      .prepare(
        `UPDATE tasks SET status_reason = ?, updated_at = ? WHERE id = ?
           AND (? IS NULL OR (killed = 0 AND status <> 'pending_kill'))`,
      )
      .run(reason, this.nowIso(), id, reason);
    return Promise.resolve();
  }

  async markKilled(id: string): Promise<TaskRecord | null> {
    this.db
      .prepare(
        "UPDATE tasks SET status = 'killed', killed = 1, status_reason = NULL, updated_at = ? WHERE id = ? AND killed = 0",
      )
      .run(this.nowIso(), id);
    return Promise.resolve(this.taskById(id));
  }

  async createRun(input: {
    taskId: string;
    tick: number | null;
    owner?: RunOwner | null;
  }): Promise<TaskRunRecord | null> {
    return Promise.resolve(this.insertRunTx(input.taskId, input.tick, input.owner ?? null));
  }

  async createTickRuns(
    items: readonly { taskId: string; tick: number }[],
    owner: RunOwner | null = null,
  ): Promise<TickOutcome[]> {
    return Promise.resolve(items.length === 0 ? [] : this.tickRunsTx(items, owner));
  }

  async claimRuns(owner: RunOwner, limit: number, options: ClaimOptions = {}): Promise<TaskRunRecord[]> {
    return limit <= 0 ? [] : this.claimTx(owner, limit, options.workspaceLimit ?? null);
  }

  async renewRunLeases(owner: RunOwner, runIds: readonly string[]): Promise<HeldRun[]> {
    if (runIds.length === 0) return [];
    const rows = this.db
      .prepare<[number, string, string], { id: string; task_id: string; task_status: TaskStatus }>(
        `UPDATE task_runs SET lease_until = ?
         WHERE node_id = ? AND status = 'running' AND id IN (SELECT value FROM json_each(?))
         RETURNING id, task_id, (SELECT status FROM tasks t WHERE t.id = task_runs.task_id) AS task_status`,
      )
      .all(this.clock.now() + owner.leaseMs, owner.nodeId, JSON.stringify(runIds));
    return rows.map((r) => ({ runId: r.id, taskId: r.task_id, taskStatus: r.task_status }));
  }

  async expiredRuns(limit = 1_000): Promise<TaskRunRecord[]> {
    return this.db
      .prepare<[number, number], RunRow>(
        `SELECT * FROM task_runs WHERE status = 'running' AND node_id IS NOT NULL AND lease_until < ?
         ORDER BY created_at, id LIMIT ?`,
      )
      .all(this.clock.now(), limit)
      .map(toRun);
  }

  async closeExpiredRun(runId: string, result: RunResult): Promise<TaskRunRecord | null> {
    const row = this.db
      .prepare<[string, number | null, string, string, string, number], RunRow>(
        `UPDATE task_runs SET status = ?, exit_code = ?, reason = ?, updated_at = ?
         WHERE id = ? AND status = 'running' AND node_id IS NOT NULL AND lease_until < ? RETURNING *`,
      )
      .get(result.status, result.exitCode, result.reason, this.nowIso(), runId, this.clock.now());
    return row === undefined ? null : toRun(row);
  }

  async setRunPid(runId: string, pid: number): Promise<void> {
    this.db.prepare('UPDATE task_runs SET pid = ? WHERE id = ?').run(pid, runId);
    return Promise.resolve();
  }

  async finishRun(runId: string, result: RunResult): Promise<TaskRunRecord | null> {
    const changed = this.db
      .prepare(
        "UPDATE task_runs SET status = ?, exit_code = ?, reason = ?, updated_at = ? WHERE id = ? AND status = 'running'",
      )
      .run(result.status, result.exitCode, result.reason, this.nowIso(), runId).changes;
    return Promise.resolve(changed === 0 ? null : this.runById(runId));
  }

  async closeUnclaimedRun(runId: string, result: RunResult): Promise<TaskRunRecord | null> {
    const row = this.db
      .prepare<[string, number | null, string, string, string], RunRow>(
        `UPDATE task_runs SET status = ?, exit_code = ?, reason = ?, updated_at = ?
         WHERE id = ? AND status = 'running' AND node_id IS NULL RETURNING *`,
      )
      .get(result.status, result.exitCode, result.reason, this.nowIso(), runId);
    return Promise.resolve(row === undefined ? null : toRun(row));
  }

  async releaseRun(runId: string, owner: RunOwner): Promise<TaskRunRecord | null> {
    const row = this.db
      .prepare<[string, string], RunRow>(
        `UPDATE task_runs SET node_id = NULL, lease_until = NULL
         WHERE id = ? AND status = 'running' AND node_id = ? RETURNING *`,
      )
      .get(runId, owner.nodeId);
    return Promise.resolve(row === undefined ? null : toRun(row));
  }

  private runById(runId: string): TaskRunRecord | null {
    const row = this.db.prepare<[string], RunRow>('SELECT * FROM task_runs WHERE id = ?').get(runId);
    return row === undefined ? null : toRun(row);
  }

  async getRun(runId: string): Promise<TaskRunRecord | null> {
    return Promise.resolve(this.runById(runId));
  }

  async listRuns(taskId: string, filter: ListRunsFilter = {}): Promise<TaskRunRecord[]> {
    const args: (string | number)[] = [taskId];
    let sql = 'SELECT * FROM task_runs WHERE task_id = ?';
    if (filter.status !== undefined && filter.status !== 'all') {
      sql += ' AND status = ?';
      args.push(filter.status);
    }
    if (filter.before !== undefined) {
      sql += ' AND (created_at, id) < (?, ?)';
      args.push(filter.before.createdAt, filter.before.id);
    }
    sql += ' ORDER BY created_at DESC, id DESC';
    if (filter.limit !== undefined) {
      sql += ' LIMIT ?';
      args.push(Math.max(0, Math.floor(filter.limit)));
    }
    return Promise.resolve(
      this.db
        .prepare<(string | number)[], RunRow>(sql)
        .all(...args)
        .map(toRun),
    );
  }

  async runningRuns(): Promise<TaskRunRecord[]> {
    return Promise.resolve(
      this.db
        .prepare<[], RunRow>("SELECT * FROM task_runs WHERE status = 'running' ORDER BY created_at, id")
        .all()
        .map(toRun),
    );
  }

  async recordSkippedTick(taskId: string, tick: number, reason: string): Promise<void> {
    this.recordSkippedTickTx(taskId, tick, reason);
    return Promise.resolve();
  }

  async recordMissedTicks(taskId: string, ticks: readonly number[], reason: string): Promise<void> {
    if (ticks.length > 0) this.missedTx(taskId, ticks, reason);
    return Promise.resolve();
  }

  async advanceLastTick(taskId: string, tick: number): Promise<void> {
    this.advanceTick(taskId, tick);
    return Promise.resolve();
  }

  async listTickRecords(taskId: string, filter: { limit?: number } = {}): Promise<TickRecord[]> {
    const sql = 'SELECT * FROM task_ticks WHERE task_id = ? ORDER BY tick DESC';
    const rows =
      filter.limit === undefined
        ? this.db.prepare<[string], TickRow>(sql).all(taskId)
        : this.db
            .prepare<[string, number], TickRow>(`${sql} LIMIT ?`)
            .all(taskId, Math.max(0, Math.floor(filter.limit)));
    return Promise.resolve(rows.map(toTick));
  }

  async lastRunStatus(taskId: string): Promise<TaskRunStatus | 'unknown'> {
    const row = this.db
      .prepare<[string], { status: TaskRunStatus }>(
        'SELECT status FROM task_runs WHERE task_id = ? ORDER BY created_at DESC, id DESC LIMIT 1',
      )
      .get(taskId);
    return Promise.resolve(row?.status ?? 'unknown');
  }
}
