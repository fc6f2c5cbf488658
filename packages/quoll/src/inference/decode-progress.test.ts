import { describe, expect, it } from 'vitest';
import { DecodeProgress } from './decode-progress.js';

describe('DecodeProgress', () => {
  it('tells the parent which body of which message is decoding, since when, and when all are decoded', async () => {
    const worker = new DecodeProgress();
    // The parent's view shares the worker's memory.
    const parent = new DecodeProgress(worker.buffer);
    expect(parent.read(1)).toEqual({ state: 'waiting' });
    worker.begin(1, 0);
    await new Promise((resolve) => setTimeout(resolve, 20));
    const first = parent.read(1);
    expect(first).toMatchObject({ state: 'decoding', body: 0 });
    expect(first.state === 'decoding' && first.elapsedMs).toBeGreaterThanOrEqual(15);
    // The next body starts its own clock.
    worker.begin(1, 1);
    const second = parent.read(1);
    expect(second).toMatchObject({ state: 'decoding', body: 1 });
    expect(second.state === 'decoding' && second.elapsedMs).toBeLessThan(15);
    // Another message is not this one.
    expect(parent.read(2)).toEqual({ state: 'waiting' });
    worker.end(1);
    expect(parent.read(1)).toEqual({ state: 'decoded' });
    expect(parent.read(2)).toEqual({ state: 'waiting' });
  });
});
