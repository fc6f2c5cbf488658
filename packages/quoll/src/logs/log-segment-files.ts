import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { LogSegmentIndex, LogSegmentRecord } from './log-segment-index.js';
import { segmentPath, sidecarPath } from './segment-file.js';
import type { SegmentReadCache } from './segment-read-cache.js';

/** What retention and recovery need from the store. */
export interface LogFilesContext {
  root: string;
  index: LogSegmentIndex;
  cache: SegmentReadCache;
}

/**
 * Deletes a segment: the index row first, then the files. A crash in between leaves only an
 * orphan file, which {@link removeOrphanSegmentFiles} sweeps at the next open; never an index
 * row pointing at nothing.
 */
export async function deleteSegment(
  ctx: LogFilesContext,
  s: Pick<LogSegmentRecord, 'pipelineId' | 'seq'>,
): Promise<void> {
  await ctx.index.deleteSegment(s.pipelineId, s.seq);
  ctx.cache.evict(s.pipelineId, s.seq);
  await rm(segmentPath(ctx.root, s.pipelineId, s.seq), { force: true });
  await rm(sidecarPath(ctx.root, s.pipelineId, s.seq), { force: true });
}

/** Byte caps of the inference log. */
export interface LogRetentionLimits {
  /** Most bytes of segment files kept per pipeline. */
  maxBytesPerPipeline: number;
  /** Most bytes of segment files kept over all pipelines. */
  maxBytesTotal: number;
}

/**
 * Deletes the oldest sealed segments until each pipeline in `pipelineIds` (and then the whole
 * store) is within its byte cap. A pipeline's newest segment is never deleted, so a cap can be
 * exceeded by up to one segment. Returns how many segments were deleted.
 */
export async function enforceLogRetention(
  ctx: LogFilesContext,
  limits: LogRetentionLimits,
  pipelineIds: Iterable<number>,
): Promise<number> {
  let deleted = 0;
  for (const pipelineId of pipelineIds) {
    while ((await ctx.index.totalBytes(pipelineId)) > limits.maxBytesPerPipeline) {
      const victim = await ctx.index.oldestDeletableSegment(pipelineId);
      if (victim === null) break;
      await deleteSegment(ctx, victim);
      deleted++;
    }
  }
  while ((await ctx.index.totalBytes()) > limits.maxBytesTotal) {
    const victim = await ctx.index.oldestDeletableSegment(null);
    if (victim === null) break;
    await deleteSegment(ctx, victim);
    deleted++;
  }
  return deleted;
}

const SEGMENT_FILE = /^(\d+)\.(arrows|idx)(\.tmp)?$/;

/** Removes files under the log root that no index row owns (left by a crash mid-delete or mid-create). */
export async function removeOrphanSegmentFiles(ctx: LogFilesContext): Promise<number> {
  let removed = 0;
  let dirs: string[];
  try {
    dirs = await readdir(ctx.root);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
  for (const dir of dirs) {
    if (!/^\d+$/.test(dir)) continue;
    const pipelineId = Number(dir);
    const known = new Set((await ctx.index.listSegments(pipelineId, 'asc')).map((s) => s.seq));
    for (const f of await readdir(join(ctx.root, dir))) {
      const m = SEGMENT_FILE.exec(f);
      if (m === null) continue;
      if (!known.has(Number(m[1])) || m[3] !== undefined) {
        await rm(join(ctx.root, dir, f), { force: true });
        removed++;
      }
    }
  }
  return removed;
}
