import type { LogSegmentIndex, LogSegmentRecord, LogSegmentUpdate, NewLogSegment } from '../../logs/index.js';
import type { SqliteHandle } from './sqlite-database.js';

interface SegmentRow {
  pipeline_id: number;
  seq: number;
  schema_id: string;
  rows: number;
  bytes: number;
  min_time: number | null;
  max_time: number | null;
  sealed: number;
  created_at: number;
}

const COLUMNS = 'pipeline_id, seq, schema_id, rows, bytes, min_time, max_time, sealed, created_at';

/** Turns a synchronous better-sqlite3 call into the port's promise (throws become rejections). */
function settle<T>(fn: () => T): Promise<T> {
  try {
    return Promise.resolve(fn());
  } catch (err) {
    return Promise.reject(err instanceof Error ? err : new Error(String(err)));
  }
}

function toRecord(r: SegmentRow): LogSegmentRecord {
  return {
    pipelineId: r.pipeline_id,
    seq: r.seq,
    schemaId: r.schema_id,
    rows: r.rows,
    bytes: r.bytes,
    minTime: r.min_time,
    maxTime: r.max_time,
    sealed: r.sealed === 1,
    createdAt: r.created_at,
  };
}

/**
 * The SQLite-backed {@link LogSegmentIndex} (table `inference_log_segments` from migration
 * `0002_inference_logs.sql`).
 *
 * @example
 * const index = new SqliteLogSegmentIndex(openSqliteDatabase(`${home}/quoll.db`));
 */
export class SqliteLogSegmentIndex implements LogSegmentIndex {
  readonly #db: SqliteHandle;
  // Statements are prepared once: the writer updates counters several times a second.
  readonly #insert;
  readonly #update;
  readonly #get;
  readonly #listAsc;
  readonly #listDesc;
  readonly #overlapAsc;
  readonly #overlapDesc;
  readonly #newest;
  readonly #unsealed;
  readonly #pipelines;
  readonly #oldestOf;
  readonly #oldestAll;
  readonly #delete;
  readonly #bytesOf;
  readonly #bytesAll;

  /** @param db a handle from `openSqliteDatabase`, migrations applied. */
  constructor(db: SqliteHandle) {
    this.#db = db;
    this.#insert = db.prepare<[number, number, string, number]>(
      'INSERT INTO inference_log_segments (pipeline_id, seq, schema_id, created_at) VALUES (?, ?, ?, ?)',
    );
    this.#update = db.prepare<[number, number, number | null, number | null, number, number, number]>(
      'UPDATE inference_log_segments SET rows = ?, bytes = ?, min_time = ?, max_time = ?, sealed = ? WHERE pipeline_id = ? AND seq = ?',
    );
    this.#get = db.prepare<[number, number], SegmentRow>(
      `SELECT ${COLUMNS} FROM inference_log_segments WHERE pipeline_id = ? AND seq = ?`,
    );
    this.#listAsc = db.prepare<[number], SegmentRow>(
      `SELECT ${COLUMNS} FROM inference_log_segments WHERE pipeline_id = ? ORDER BY seq ASC`,
    );
    this.#listDesc = db.prepare<[number], SegmentRow>(
      `SELECT ${COLUMNS} FROM inference_log_segments WHERE pipeline_id = ? ORDER BY seq DESC`,
    );
    const overlap = `SELECT ${COLUMNS} FROM inference_log_segments
      WHERE pipeline_id = ? AND rows > 0 AND max_time >= ? AND min_time <= ?`;
    this.#overlapAsc = db.prepare<[number, number, number], SegmentRow>(`${overlap} ORDER BY seq ASC`);
    this.#overlapDesc = db.prepare<[number, number, number], SegmentRow>(`${overlap} ORDER BY seq DESC`);
    this.#newest = db.prepare<[number, number], SegmentRow>(
      `SELECT ${COLUMNS} FROM inference_log_segments WHERE pipeline_id = ? ORDER BY seq DESC LIMIT ?`,
    );
    this.#unsealed = db.prepare<[], SegmentRow>(
      `SELECT ${COLUMNS} FROM inference_log_segments WHERE sealed = 0 ORDER BY pipeline_id, seq`,
    );
    this.#pipelines = db.prepare<[], { pipeline_id: number }>(
      'SELECT DISTINCT pipeline_id FROM inference_log_segments ORDER BY pipeline_id',
    );
    // "Not the newest of its pipeline": retention never removes the segment that carries the
    // pipeline's latest sequence number, so numbering (and cursors) never restart.
    const deletable = `SELECT ${COLUMNS} FROM inference_log_segments s
      WHERE sealed = 1 AND seq < (SELECT MAX(seq) FROM inference_log_segments n WHERE n.pipeline_id = s.pipeline_id)`;
    this.#oldestOf = db.prepare<[number], SegmentRow>(
      `${deletable} AND pipeline_id = ? ORDER BY COALESCE(max_time, created_at), seq LIMIT 1`,
    );
    this.#oldestAll = db.prepare<[], SegmentRow>(
      `${deletable} ORDER BY COALESCE(max_time, created_at), pipeline_id, seq LIMIT 1`,
    );
    this.#delete = db.prepare<[number, number]>(
      'DELETE FROM inference_log_segments WHERE pipeline_id = ? AND seq = ?',
    );
    this.#bytesOf = db.prepare<[number], { total: number }>(
      'SELECT COALESCE(SUM(bytes), 0) AS total FROM inference_log_segments WHERE pipeline_id = ?',
    );
    this.#bytesAll = db.prepare<[], { total: number }>(
      'SELECT COALESCE(SUM(bytes), 0) AS total FROM inference_log_segments',
    );
  }

  addSegment(s: NewLogSegment): Promise<void> {
    return settle(() => {
      this.#insert.run(s.pipelineId, s.seq, s.schemaId, s.createdAt);
    });
  }

  updateSegments(updates: readonly LogSegmentUpdate[]): Promise<void> {
    return settle(() => {
      // One transaction: one WAL commit for every pipeline the writer touched this round.
      this.#db.transaction(() => {
        for (const u of updates) {
          this.#update.run(u.rows, u.bytes, u.minTime, u.maxTime, u.sealed ? 1 : 0, u.pipelineId, u.seq);
        }
      })();
    });
  }

  getSegment(pipelineId: number, seq: number): Promise<LogSegmentRecord | null> {
    return settle(() => {
      const row = this.#get.get(pipelineId, seq);
      return row === undefined ? null : toRecord(row);
    });
  }

  listSegments(pipelineId: number, order: 'asc' | 'desc'): Promise<LogSegmentRecord[]> {
    return settle(() => (order === 'asc' ? this.#listAsc : this.#listDesc).all(pipelineId).map(toRecord));
  }

  segmentsOverlapping(
    pipelineId: number,
    start: number,
    end: number,
    order: 'asc' | 'desc',
  ): Promise<LogSegmentRecord[]> {
    return settle(() =>
      (order === 'asc' ? this.#overlapAsc : this.#overlapDesc).all(pipelineId, start, end).map(toRecord),
    );
  }

  newestSegments(pipelineId: number, limit: number): Promise<LogSegmentRecord[]> {
    return settle(() => this.#newest.all(pipelineId, limit).map(toRecord));
  }

  unsealedSegments(): Promise<LogSegmentRecord[]> {
    return settle(() => this.#unsealed.all().map(toRecord));
  }

  pipelineIds(): Promise<number[]> {
    return settle(() => this.#pipelines.all().map((r) => r.pipeline_id));
  }

  oldestDeletableSegment(pipelineId: number | null): Promise<LogSegmentRecord | null> {
    return settle(() => {
      const row = pipelineId === null ? this.#oldestAll.get() : this.#oldestOf.get(pipelineId);
      return row === undefined ? null : toRecord(row);
    });
  }

  deleteSegment(pipelineId: number, seq: number): Promise<void> {
    return settle(() => {
      this.#delete.run(pipelineId, seq);
    });
  }

  totalBytes(pipelineId?: number): Promise<number> {
    return settle(
      () => (pipelineId === undefined ? this.#bytesAll.get() : this.#bytesOf.get(pipelineId))?.total ?? 0,
    );
  }
}
