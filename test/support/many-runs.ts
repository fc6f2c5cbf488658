import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import type { Client, Task } from '@quoll/client';
import { lastRunEnded, readyOrchestration } from './orchestration-helpers.js';
import type { TestServer } from './test-server.js';

/**
 * Writes `count` ended runs of a task straight into the test server's store (its home's
 * SQLite file, or its PostgreSQL database): a task with 10 000 runs in a second, where real
 * runs would take hours. Run i is created `count - i` seconds before `newest` (so the runs
 * the server makes later are newer), with tick = its creation time; returns their ids,
 * newest first.
 */
export async function insertEndedRuns(
  server: TestServer,
  taskId: string,
  count: number,
  newest = Date.now() - 60_000,
): Promise<string[]> {
  const rows = Array.from({ length: count }, (_, i) => {
    const at = newest - (count - 1 - i) * 1000;
    const iso = new Date(at).toISOString();
    // The index leads, so the 8 characters the console shows tell runs apart (run 0 = 00000000).
    const id = `${i.toString(16).padStart(8, '0')}-0000-4000-8000-000000000000`;
    return { id, at, iso, status: i % 10 === 0 ? 'failure' : 'success', exit: i % 10 === 0 ? 1 : 0 };
  });
  const sql =
    'INSERT INTO task_runs (id, task_id, tick, status, exit_code, reason, pid, created_at, updated_at) VALUES ';
  if (server.database === null) {
    const db = new Database(join(server.home, 'quoll.db'));
    try {
      db.pragma('busy_timeout = 10000');
      const insert = db.prepare(`${sql}(?, ?, ?, ?, ?, ?, NULL, ?, ?)`);
      db.transaction(() => {
        for (const r of rows)
          insert.run(r.id, taskId, r.at, r.status, r.exit, `exit ${r.exit}`, r.iso, r.iso);
      })();
    } finally {
      db.close();
    }
  } else {
    const client = new pg.Client({ connectionString: server.database });
    await client.connect();
    try {
      for (let at = 0; at < rows.length; at += 1000) {
        const chunk = rows.slice(at, at + 1000);
        const args: unknown[] = [];
        const values = chunk.map((r) => {
          args.push(r.id, taskId, r.at, r.status, r.exit, `exit ${r.exit}`, r.iso);
          const n = args.length;
          return `($${n - 6}, $${n - 5}, $${n - 4}, $${n - 3}, $${n - 2}, $${n - 1}, NULL, $${n}, $${n})`;
        });
        await client.query(sql + values.join(', '), args);
      }
    } finally {
      await client.end();
    }
  }
  return rows.map((r) => r.id).reverse();
}

/**
 * A run-once task in the client's current workspace with one real run, ended, and `count - 1`
 * older ended runs written by {@link insertEndedRuns}; returns the task and every run id,
 * newest (the real run) first.
 */
export async function taskWithEndedRuns(
  server: TestServer,
  client: Client,
  name: string,
  count: number,
): Promise<{ task: Task; all: string[] }> {
  const orchestration = await readyOrchestration(client, 'quick', { 'main.mjs': "console.log('done');\n" });
  const task = await orchestration.runOnce({ name });
  const real = await lastRunEnded(task);
  return { task, all: [real.id, ...(await insertEndedRuns(server, task.id, count - 1))] };
}
