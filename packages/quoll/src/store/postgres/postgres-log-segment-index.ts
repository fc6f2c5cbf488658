import type { LogSegmentIndex, LogSegmentRecord, LogSegmentUpdate, NewLogSegment } from '../../logs/index.js';
import type { PostgresDatabase } from './postgres-database.js';

interface SegmentRow {
  pipeline_id: number;
  seq: number;
  schema_id: string;
  rows: number;
  bytes: number;
  min_time: number | null;
  max_time: number | null;
  sealed: boolean;
  created_at: number;
}

const COLUMNS = 'pipeline_id, seq, schema_id, rows, bytes, min_time, max_time, sealed, created_at';

const toRecord = (r: SegmentRow): LogSegmentRecord => ({
  pipelineId: r.pipeline_id,
  seq: r.seq,
  schemaId: r.schema_id,
  rows: r.rows,
  bytes: r.bytes,
  minTime: r.min_time,
  maxTime: r.max_time,
  sealed: r.sealed,
  createdAt: r.created_at,
});

/** {@link LogSegmentIndex} on PostgreSQL (table `inference_log_segments`, migration 0002). */
export class PostgresLogSegmentIndex implements LogSegmentIndex {
  constructor(private readonly db: PostgresDatabase) {}

  async addSegment(s: NewLogSegment): Promise<void> {
    await this.db.run(
      'INSERT INTO inference_log_segments (pipeline_id, seq, schema_id, created_at) VALUES ($1, $2, $3, $4)',
      [s.pipelineId, s.seq, s.schemaId, s.createdAt],
    );
  }

  async updateSegments(updates: readonly LogSegmentUpdate[]): Promise<void> {
    if (updates.length === 0) return;
    // One statement for every pipeline the writer touched this round.
    await this.db.run(
      `UPDATE inference_log_segments s SET rows = u.rows, bytes = u.bytes, min_time = u.min_time, max_time = u.max_time, sealed = u.sealed
       FROM unnest($1::int[], $2::int[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::boolean[])
         AS u(pipeline_id, seq, rows, bytes, min_time, max_time, sealed)
       WHERE s.pipeline_id = u.pipeline_id AND s.seq = u.seq`,
      [
        updates.map((u) => u.pipelineId),
        updates.map((u) => u.seq),
        updates.map((u) => u.rows),
        updates.map((u) => u.bytes),
        updates.map((u) => u.minTime),
        updates.map((u) => u.maxTime),
        updates.map((u) => u.sealed),
      ],
    );
  }

  async getSegment(pipelineId: number, seq: number): Promise<LogSegmentRecord | null> {
    const r = await this.db.one<SegmentRow>(
      `SELECT ${COLUMNS} FROM inference_log_segments WHERE pipeline_id = $1 AND seq = $2`,
      [pipelineId, seq],
    );
    return r ? toRecord(r) : null;
  }

  async listSegments(pipelineId: number, order: 'asc' | 'desc'): Promise<LogSegmentRecord[]> {
    const rows = await this.db.rows<SegmentRow>(
      `SELECT ${COLUMNS} FROM inference_log_segments WHERE pipeline_id = $1 ORDER BY seq ${order === 'asc' ? 'ASC' : 'DESC'}`,
      [pipelineId],
    );
    return rows.map(toRecord);
  }

  async segmentsOverlapping(
    pipelineId: number,
    start: number,
    end: number,
    order: 'asc' | 'desc',
  ): Promise<LogSegmentRecord[]> {
    const rows = await this.db.rows<SegmentRow>(
      `SELECT ${COLUMNS} FROM inference_log_segments
       WHERE pipeline_id = $1 AND rows > 0 AND max_time >= $2 AND min_time <= $3
       ORDER BY seq ${order === 'asc' ? 'ASC' : 'DESC'}`,
      [pipelineId, start, end],
    );
    return rows.map(toRecord);
  }

  async newestSegments(pipelineId: number, limit: number): Promise<LogSegmentRecord[]> {
    const rows = await this.db.rows<SegmentRow>(
      `SELECT ${COLUMNS} FROM inference_log_segments WHERE pipeline_id = $1 ORDER BY seq DESC LIMIT $2`,
      [pipelineId, limit],
    );
    return rows.map(toRecord);
  }

  async unsealedSegments(): Promise<LogSegmentRecord[]> {
    const rows = await this.db.rows<SegmentRow>(
      `SELECT ${COLUMNS} FROM inference_log_segments WHERE NOT sealed ORDER BY pipeline_id, seq`,
    );
    return rows.map(toRecord);
  }

  async pipelineIds(): Promise<number[]> {
    const rows = await this.db.rows<{ pipeline_id: number }>(
      'SELECT DISTINCT pipeline_id FROM inference_log_segments ORDER BY pipeline_id',
    );
    return rows.map((r) => r.pipeline_id);
  }

  async oldestDeletableSegment(pipelineId: number | null): Promise<LogSegmentRecord | null> {
    // Never the newest segment of its pipeline, so sequence numbers (and cursors) never restart.
    const deletable = `SELECT ${COLUMNS} FROM inference_log_segments s
      WHERE sealed AND seq < (SELECT MAX(seq) FROM inference_log_segments n WHERE n.pipeline_id = s.pipeline_id)`;
    const r =
      pipelineId === null
        ? await this.db.one<SegmentRow>(
            `${deletable} ORDER BY COALESCE(max_time, created_at), pipeline_id, seq LIMIT 1`,
          )
        : await this.db.one<SegmentRow>(
            `${deletable} AND pipeline_id = $1 ORDER BY COALESCE(max_time, created_at), seq LIMIT 1`,
            [pipelineId],
          );
    return r ? toRecord(r) : null;
  }

  async deleteSegment(pipelineId: number, seq: number): Promise<void> {
    await this.db.run('DELETE FROM inference_log_segments WHERE pipeline_id = $1 AND seq = $2', [
      pipelineId,
      seq,
    ]);
  }

  async totalBytes(pipelineId?: number): Promise<number> {
    const r =
      pipelineId === undefined
        ? await this.db.one<{ total: number }>(
            'SELECT COALESCE(SUM(bytes), 0) AS total FROM inference_log_segments',
          )
        : await this.db.one<{ total: number }>(
            'SELECT COALESCE(SUM(bytes), 0) AS total FROM inference_log_segments WHERE pipeline_id = $1',
            [pipelineId],
          );
    return r?.total ?? 0;
  }
}
