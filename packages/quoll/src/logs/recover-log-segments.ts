import { open } from 'node:fs/promises';
import { ARROW_EOS } from './arrow-message-encoder.js';
import type { LogFilesContext } from './log-segment-files.js';
import { deleteSegment } from './log-segment-files.js';
import { writeFully } from './open-segment.js';
import { scanSegment, segmentPath, sidecarPath } from './segment-file.js';

/** What crash recovery did. */
export interface LogRecoveryReport {
  /** Unsealed segments found (a graceful stop leaves none). */
  segments: number;
  /** Rows kept in them. */
  rows: number;
  /** Bytes of torn tails cut off. */
  truncatedBytes: number;
  /** Segments dropped because not even one complete batch was in them. */
  dropped: number;
}

/**
 * Brings every unsealed segment (what a crash leaves) to a clean, sealed state: keeps the
 * complete record batches, cuts a torn tail, appends the end-of-stream marker, writes the
 * batch-index sidecar and sets the index row's counts and time range from the file itself.
 */
export async function recoverLogSegments(ctx: LogFilesContext): Promise<LogRecoveryReport> {
  const report: LogRecoveryReport = { segments: 0, rows: 0, truncatedBytes: 0, dropped: 0 };
  for (const seg of await ctx.index.unsealedSegments()) {
    report.segments++;
    const path = segmentPath(ctx.root, seg.pipelineId, seg.seq);
    let scan;
    try {
      scan = await scanSegment(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      scan = null;
    }
    if (scan === null || scan.index.count === 0) {
      await deleteSegment(ctx, seg);
      report.dropped++;
      continue;
    }
    const { index } = scan;
    const keep = index.endOffset;
    report.truncatedBytes += scan.fileBytes - (scan.hasEos ? keep + ARROW_EOS.byteLength : keep);
    const fh = await open(path, 'r+');
    try {
      await fh.truncate(keep);
      await writeFully(fh, ARROW_EOS, keep);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await index.save(sidecarPath(ctx.root, seg.pipelineId, seg.seq));
    await ctx.index.updateSegments([
      {
        pipelineId: seg.pipelineId,
        seq: seg.seq,
        rows: index.rows,
        bytes: keep + ARROW_EOS.byteLength,
        minTime: index.firstTime(0),
        maxTime: index.lastTime(index.count - 1),
        sealed: true,
      },
    ]);
    ctx.cache.evict(seg.pipelineId, seg.seq);
    report.rows += index.rows;
  }
  return report;
}
