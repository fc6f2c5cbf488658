import { SegmentBatchIndex } from './segment-batch-index.js';
import { readSchemaMessage, scanSegment, segmentPath, sidecarPath } from './segment-file.js';
import { stat } from 'node:fs/promises';

/** What a reader needs to read a segment: its file, batch index and schema message. */
export interface SegmentView {
  path: string;
  index: SegmentBatchIndex;
  schemaMessage: Uint8Array;
}

/**
 * Batch indexes of sealed segments, loaded on first use from the `<seq>.idx` sidecar (or
 * rebuilt by scanning the file when the sidecar is missing or stale) and kept for the next
 * queries, least recently used first out.
 */
export class SegmentReadCache {
  readonly #root: string;
  readonly #capacity: number;
  readonly #entries = new Map<string, Promise<SegmentView | null>>();

  /**
   * @param root the log root directory
   * @param capacity segments kept in memory @default 256
   */
  constructor(root: string, capacity = 256) {
    this.#root = root;
    this.#capacity = capacity;
  }

  /** The view of a sealed segment; `null` when its file is gone. */
  get(pipelineId: number, seq: number): Promise<SegmentView | null> {
    const key = `${pipelineId}/${seq}`;
    let entry = this.#entries.get(key);
    if (entry !== undefined) {
      // Re-insert: Map order is the LRU order.
      this.#entries.delete(key);
    } else {
      entry = this.#load(pipelineId, seq);
      // A failed load is not remembered, so the next query tries again.
      entry.catch(() => this.#entries.delete(key));
    }
    this.#entries.set(key, entry);
    this.#trim();
    return entry;
  }

  /** Stores the view of a segment the writer has just sealed (its index is already in memory). */
  put(pipelineId: number, seq: number, view: SegmentView): void {
    this.#entries.set(`${pipelineId}/${seq}`, Promise.resolve(view));
    this.#trim();
  }

  /** Forgets a segment (deleted by retention). */
  evict(pipelineId: number, seq: number): void {
    this.#entries.delete(`${pipelineId}/${seq}`);
  }

  #trim(): void {
    while (this.#entries.size > this.#capacity) {
      const oldest = this.#entries.keys().next().value;
      if (oldest === undefined) break;
      this.#entries.delete(oldest);
    }
  }

  async #load(pipelineId: number, seq: number): Promise<SegmentView | null> {
    const path = segmentPath(this.#root, pipelineId, seq);
    let size: number;
    try {
      size = (await stat(path)).size;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    const sidecar = sidecarPath(this.#root, pipelineId, seq);
    let index = await SegmentBatchIndex.load(sidecar, size);
    if (index === null) {
      const scan = await scanSegment(path);
      if (scan === null) return null;
      index = scan.index;
      // Only a complete file gets a sidecar; `fromBytes` checks the size on the next load.
      if (scan.hasEos && scan.validBytes === size) await index.save(sidecar);
    }
    return { path, index, schemaMessage: await readSchemaMessage(path, index.schemaBytes) };
  }
}
