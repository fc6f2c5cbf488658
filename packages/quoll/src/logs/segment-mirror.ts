import type { LogSegmentUpdate } from './log-segment-index.js';
import type { SegmentProgress } from './log-writer-protocol.js';
import { SegmentBatchIndex } from './segment-batch-index.js';
import { segmentPath } from './segment-file.js';
import type { SegmentView } from './segment-read-cache.js';

/**
 * The owner thread's copy of the batch index of a segment the writer thread is appending to,
 * kept up to date from the writer's progress reports: queries read the rows already written
 * to it (read-your-writes) before its index row catches up.
 */
export class SegmentMirror {
  readonly pipelineId: number;
  readonly seq: number;
  readonly schemaId: string;
  readonly view: SegmentView;

  private constructor(pipelineId: number, seq: number, schemaId: string, view: SegmentView) {
    this.pipelineId = pipelineId;
    this.seq = seq;
    this.schemaId = schemaId;
    this.view = view;
  }

  /** A mirror from a segment's first progress report (the one that carries its schema message). */
  static fromFirst(root: string, p: SegmentProgress & { schemaMessage: Uint8Array }): SegmentMirror {
    const view: SegmentView = {
      path: segmentPath(root, p.pipelineId, p.seq),
      index: new SegmentBatchIndex(p.schemaMessage.byteLength),
      schemaMessage: p.schemaMessage,
    };
    const mirror = new SegmentMirror(p.pipelineId, p.seq, p.schemaId, view);
    mirror.apply(p);
    return mirror;
  }

  /** Adds the entries of a progress report (entries already known are skipped). */
  apply(p: SegmentProgress): void {
    const index = this.view.index;
    for (let k = 0, b = p.from; k < p.entries.length; k += 5, b++) {
      if (b < index.count) continue;
      const e = p.entries;
      index.push(e[k] ?? 0, e[k + 1] ?? 0, e[k + 2] ?? 0, e[k + 3] ?? 0, e[k + 4] ?? 0);
    }
  }

  /** Counters as the index row will have them. */
  update(): LogSegmentUpdate {
    const index = this.view.index;
    const n = index.count;
    return {
      pipelineId: this.pipelineId,
      seq: this.seq,
      rows: index.rows,
      bytes: index.endOffset,
      minTime: n === 0 ? null : index.firstTime(0),
      maxTime: n === 0 ? null : index.lastTime(n - 1),
      sealed: false,
    };
  }
}
